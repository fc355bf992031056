"""The suite's own arrangement (``tests/conftest.py``): ``make test``'s two workers keep each
module together, and every module that asks for a session server on one worker.

If the grouping silently stopped (as it does under pytest 9.2's node ids), the servers would
start on both workers and module fixtures would be built twice: slower, and tests that share a
module fixture in order would fail far from the cause. This says so here instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SERVER_FIXTURES, SERVERS_GROUP

THIS = "tests/test_suite.py"


def _group(item: pytest.Item) -> str:
    mark = item.get_closest_marker("xdist_group")
    assert mark is not None, f"{item.nodeid} has no group"
    return str(mark.args[0])


def test_this_module_is_one_group_and_the_workers_honour_it(request: pytest.FixtureRequest) -> None:
    assert _group(request.node) == THIS
    if getattr(request.config.option, "loadgroup", False):  # on a `--dist loadgroup` worker
        assert request.node.nodeid.endswith(f"@{THIS}"), (
            f"{request.node.nodeid}: xdist dropped the group; check the pytest pin"
        )


def test_every_module_is_one_group_and_the_servers_share_one(
    request: pytest.FixtureRequest,
) -> None:
    groups: dict[str, set[str]] = {}
    for item in request.session.items:
        module = Path(str(item.fspath)).relative_to(request.config.rootpath).as_posix()
        groups.setdefault(module, set()).add(_group(item))
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            assert _group(item) == SERVERS_GROUP, item.nodeid
    for module, names in groups.items():
        assert len(names) == 1 and names <= {module, SERVERS_GROUP}, (module, names)
