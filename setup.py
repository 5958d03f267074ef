"""Packaging by discovery: the repository root is the ``edgehisto`` package, every room a subpackage.

pyproject.toml holds the metadata; this file only says which packages there are, found rather than
listed by hand: each room with an ``__init__.py`` (tests and benchmarks are not shipped), and the
data folders that ship with the code (the embedded models, the kiosk's page) as namespace packages,
so that setuptools neither warns about nor drops them.
"""

from setuptools import find_namespace_packages, find_packages, setup

NOT_SHIPPED = ["tests", "tests.*", "benchmarks", "benchmarks.*"]
# Development files of a bundle (Keras reference, held-out listing) stay out of the wheel.
DATA_FOLDERS, DEVELOPMENT_ONLY = ["runtime.models", "runtime.models.*", "kiosk.static"], ["*.reference"]


def _importable(name: str) -> bool:
    # A folder such as idc-default is no identifier: its files ship as data of the package above it.
    return all(part.isidentifier() for part in name.split("."))


found = {*find_packages(".", exclude=NOT_SHIPPED),
         *find_namespace_packages(".", include=DATA_FOLDERS, exclude=DEVELOPMENT_ONLY)}
packages = ["edgehisto"] + [f"edgehisto.{name}" for name in sorted(found) if _importable(name)]
setup(packages=packages)
