"""``edgehisto models``: the bundles embedded in the package, and whether they verify here."""

from __future__ import annotations

import json

import click


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Run each bundle's golden set on this machine (about a second per bundle).")
def models(as_json: bool, verify: bool) -> None:
    """List the embedded bundles and the names that select them (classify --model NAME).

    The default is used when classify gets no --model.

    Each shows its stored parity verdict (from export) and, with --verify, this machine's
    ``edgehisto verify`` verdict.
    """
    from edgehisto.runtime.registry import describe_embedded

    rows = describe_embedded(verify=verify)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no embedded bundles")
    for row in rows:
        marker = " (default)" if row["default"] else ""
        here = {True: "passes", False: "FAILS", None: "not run"}[row["verified_here"]]
        click.echo(f"{' / '.join(row['names'])}{marker}: task {row['task']} ({row['arch']}), "
                   f"model input {row['input_size'][0]}x{row['input_size'][1]}, {row['size_mb']} MB on disk "
                   f"({', '.join(row['precisions'])}), manifest sha256 {row['manifest_sha256'][:12]}")
        if row["listed_absent"]:
            click.echo(f"  listed but not shipped here ({row['listed_absent_mb']} MB, development files): "
                       f"{', '.join(row['listed_absent'])}")
        if row["expects"]:
            click.echo(f"  expects: {row['expects']}")
        click.echo(f"  parity at export: {'passed' if row['parity_passed'] else 'NOT passed'}; "
                   f"verify on this machine ({row['cpu']}): {here}")
        click.echo(f"  {row['path']}")
        if row["model_card"]:
            click.echo(f"  model card: {row['model_card']}")
