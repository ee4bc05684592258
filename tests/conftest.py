"""What every suite shares: the fixtures of tests/support/fixtures.py, and the rule that tests
needing root in an isolated node netns (functional, reliability, e2e) are skipped elsewhere."""

from __future__ import annotations

import os

import pytest

from tests.support.topology import in_isolated_world

pytest_plugins = ("tests.support.fixtures",)
ROOT_SUITES = ("functional", "reliability", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # scripts/test runs pytest through scripts/isolated: the node netns is ours to change.
    if os.geteuid() == 0 and in_isolated_world():
        return
    skip = pytest.mark.skip(reason="needs root in an isolated node netns: run ./scripts/test")
    for item in items:
        if item.path.relative_to(os.path.dirname(__file__)).parts[0] in ROOT_SUITES:
            item.add_marker(skip)
