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


def train_command(name: str) -> click.Command:
    return command("train").commands[name]


@pytest.mark.parametrize(("name", "config_path"), [("idc", "edgehisto.train.idc:TrainConfig"),
                                                  ("breakhis", "edgehisto.train.breakhis:BreakhisConfig")])
def test_train_options_are_the_config_fields_with_the_config_defaults(name, config_path):
    from edgehisto.train.cli_train import defaults
    from edgehisto.train.fit import FitConfig

    module, attribute = config_path.split(":")
    config = getattr(importlib.import_module(module), attribute)
    assert issubclass(config, FitConfig)
    expected = defaults(config)
    options = {p.name: p for p in train_command(name).params if isinstance(p, click.Option)}
    assert set(expected) - {"verbose"} <= set(options)
    for field_name, default in expected.items():
        if field_name == "magnifications":  # a repeatable option: none given means every magnification
            assert options[field_name].multiple and default is None
        elif field_name != "verbose":
            assert options[field_name].default == default, field_name


def test_train_model_choices_come_from_the_registry():
    from edgehisto.train.breakhis import ARCH_MODELS
    from edgehisto.train.models import model_names

    assert list(option(train_command("idc"), "model").type.choices) == model_names("idc")
    assert list(option(train_command("breakhis"), "arch").type.choices) == list(ARCH_MODELS)
