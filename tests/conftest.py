"""Shared pytest fixtures for agechat's graph-level tests (the harness is agechat_ros.testing)."""

from agechat_ros.testing import graph, pytest_runtest_makereport  # noqa: F401 - pytest finds them
