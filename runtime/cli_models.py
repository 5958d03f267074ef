"""``edgehisto models``: the bundles embedded in the package."""

from __future__ import annotations

import json

import click


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def models(as_json: bool) -> None:
    """List the embedded bundles (the default is used when classify gets no --model)."""
    from edgehisto.runtime.bundle import load_bundle
    from edgehisto.runtime.registry import DEFAULT_MODEL, embedded_bundles

    rows = []
    for name, path in embedded_bundles().items():
        bundle = load_bundle(path)
        stages = bundle.manifest["stages"]
        rows.append({
            "name": name, "default": name == DEFAULT_MODEL, "path": str(path), "task": bundle.task,
            "input_size": list(bundle.preprocess.input_size),
            "classes": {s: v["class_names"] for s, v in stages.items()},
            "parity_passed": bundle.manifest.get("parity", {}).get("passed"),
            "size_mb": round(sum(e["bytes"] for e in bundle.manifest["files"].values()) / 1e6, 2),
            "model_card": str(path / "MODEL_CARD.md") if (path / "MODEL_CARD.md").is_file() else None,
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no embedded bundles")
    for row in rows:
        marker = " (default)" if row["default"] else ""
        click.echo(f"{row['name']}{marker}: task {row['task']}, input {row['input_size'][0]}x{row['input_size'][1]}, "
                   f"{row['size_mb']} MB, parity {'passed' if row['parity_passed'] else 'NOT passed'}")
        click.echo(f"  {row['path']}")
        if row["model_card"]:
            click.echo(f"  model card: {row['model_card']}")
