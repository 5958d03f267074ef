"""The CLI restates no fact of the library: choices and defaults come from where they live."""

from __future__ import annotations

import importlib

import click
import pytest

from edgehisto.bundle.manifest import PRECISIONS
from edgehisto.cli import COMMANDS


def command(name: str) -> click.Command:
    module, attribute = COMMANDS[name].split(":")
    return getattr(importlib.import_module(module), attribute)


def option(cmd: click.Command, name: str) -> click.Option:
    (found,) = [p for p in cmd.params if p.name == name]
    return found


@pytest.mark.parametrize(("name", "extra"), [("classify", ()), ("verify", ("both",)), ("evaluate", ("both",))])
def test_precision_choices_are_the_bundle_precisions(name, extra):
    assert tuple(option(command(name), "precision").type.choices) == (*PRECISIONS, *extra)
