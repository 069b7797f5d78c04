"""Shared fixtures for avatar_node's tests: the DDS graph harness of agechat_ros."""

from agechat_ros.testing import graph, pytest_runtest_makereport  # noqa: F401 - pytest finds them
