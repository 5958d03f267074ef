"""The ``edgehisto`` command: a thin, lazily loaded group over the stage libraries.

Each command lives in a small module of the stage that owns it and is imported only
when it is invoked, so ``edgehisto classify`` never pays for TensorFlow.
"""

from __future__ import annotations

import importlib
import sys

import click

from edgehisto import __version__
from edgehisto.errors import EdgehistoError

# command name -> "module:attribute"; adding a command is one module and one entry here.
COMMANDS: dict[str, str] = {
    "synth": "edgehisto.datasets.cli_synth:synth",
    "inspect": "edgehisto.datasets.cli_inspect:inspect_cmd",
    "train": "edgehisto.train.cli_train:train",
    "export": "edgehisto.export.cli_export:export_cmd",
    "check-parity": "edgehisto.export.cli_parity:check_parity",
    "export-variants": "edgehisto.export.cli_variants:export_variants_cmd",
    "cv-precision": "edgehisto.export.cli_cv_precision:cv_precision_cmd",
    "default-model": "edgehisto.release.cli_default_model:default_model",
    "breakhis-model": "edgehisto.release.cli_breakhis_model:breakhis_model",
    "breakhis-card": "edgehisto.release.cli_breakhis_model:breakhis_card",
    "classify": "edgehisto.runtime.cli_classify:classify",
    "evaluate": "edgehisto.evaluate.cli_evaluate:evaluate",
    "bench": "edgehisto.bench.cli_bench:bench",
    "models": "edgehisto.runtime.cli_models:models",
    "verify": "edgehisto.runtime.cli_verify:verify",
    "serve": "edgehisto.kiosk.cli_serve:serve",
    "batch": "edgehisto.scale.cli_batch:batch",
    "map": "edgehisto.maps.cli_map:map_cmd",
}


# Top-level modules of the [train] extra (pyproject.toml), named when a command needs one.
TRAIN_EXTRA_MODULES = frozenset({"tensorflow", "keras", "tf2onnx", "onnx", "ai_edge_litert", "sympy", "sklearn",
                                 "matplotlib"})
# ... and of the [kiosk] extra (edgehisto serve).
KIOSK_EXTRA_MODULES = frozenset({"fastapi", "uvicorn", "starlette", "python_multipart"})
# ... and of the [scale] extra (edgehisto batch).
SCALE_EXTRA_MODULES = frozenset({"ray", "pyarrow"})


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, sorted, without importing any command module."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """Import and return one command, or None for an unknown name."""
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgehisto")
def cli() -> None:
    """Edge inference for breast-histopathology tiles, with parity-checked exports."""


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; edgehisto errors become one line on stderr and exit code 2.

    With ``standalone_mode=False`` click *returns* the code of a ``click.exceptions.Exit``
    (``--help``, ``--version`` and our own ``Exit(1)``) instead of raising it, so the returned
    value is the exit status; a command that finishes normally returns None, i.e. 0.
    """
    try:
        status = cli.main(args=argv, prog_name="edgehisto", standalone_mode=False)
    except click.exceptions.Exit as stop:  # raised, not returned, by some click versions
        sys.exit(stop.exit_code)
    except click.ClickException as usage:
        usage.show()
        sys.exit(usage.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except EdgehistoError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except ModuleNotFoundError as missing:
        # The base install is the runtime only; training, export, parity, evaluate and the full
        # bench need the [train] extra. Anything else missing is a real bug: let it show.
        top = (missing.name or "").split(".")[0]
        extra = next((name for name, modules in (("train", TRAIN_EXTRA_MODULES), ("kiosk", KIOSK_EXTRA_MODULES),
                                                 ("scale", SCALE_EXTRA_MODULES)) if top in modules), None)
        if extra is None:
            raise
        click.echo(f"error: this command needs {missing.name}, which the runtime-only install lacks: "
                   f'pip install "edgehisto[{extra}]"', err=True)
        sys.exit(2)
    sys.exit(status if isinstance(status, int) else 0)
