"""`make test` runs on two pytest-xdist workers; each expensive trained fixture must stay on one worker."""

from __future__ import annotations

import pytest
from conftest import WORKER_GROUPS


def test_every_test_of_an_expensive_fixture_carries_its_worker_group(request):
    """pytest 9.2 made xdist's loadgroup drop the groups without a word; this says so instead."""
    if not request.config.getvalue("loadgroup"):  # set by pytest-xdist in its workers under --dist loadgroup
        pytest.skip("not run with pytest-xdist --dist loadgroup")
    wanted = [item for item in request.session.items
              if any(m.args and m.args[0] in WORKER_GROUPS.values() for m in item.iter_markers("xdist_group"))]
    if not wanted:
        pytest.skip("no test of an expensive fixture was selected")
    ungrouped = [item.nodeid for item in wanted if "@" not in item.nodeid.rsplit("]", 1)[-1]]
    assert not ungrouped, f"xdist did not group these tests (each worker would build the fixture): {ungrouped[:3]}"
