"""Shared pytest fixtures for agechat's graph-level tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ros_graph import Graph  # noqa: E402


def _domain_id() -> int:
    """Return this run's DDS domain: ROS_DOMAIN_ID when set (make test picks one), else by PID."""
    return int(os.environ.get('ROS_DOMAIN_ID') or (os.getpid() % 100 + 1))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f'rep_{report.when}', report)


@pytest.fixture
def graph(request, tmp_path):
    """Yield a Graph on this run's domain; node logs are printed when the test fails."""
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    the_graph = Graph(_domain_id(), tmp_path / 'graph')
    yield the_graph
    the_graph.shutdown()
    failed = any(
        getattr(request.node, f'rep_{when}', None) is not None
        and getattr(request.node, f'rep_{when}').failed
        for when in ('setup', 'call')
    )
    if failed:
        sys.stderr.write('\n' + the_graph.logs() + '\n')
