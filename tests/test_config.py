"""config/agechat.yaml only sets parameters the nodes really declare, with values they accept.

rclpy silently ignores unknown names in a parameter file, so a typo would otherwise go unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'config' / 'agechat.yaml'
SECTIONS = yaml.safe_load(CONFIG.read_text())


def _value(parameter_value):
    kind = parameter_value.type
    return {
        ParameterType.PARAMETER_BOOL: parameter_value.bool_value,
        ParameterType.PARAMETER_INTEGER: parameter_value.integer_value,
        ParameterType.PARAMETER_DOUBLE: parameter_value.double_value,
        ParameterType.PARAMETER_STRING: parameter_value.string_value,
    }.get(kind, None)


@pytest.mark.parametrize('node_name', sorted(SECTIONS))
def test_every_configured_parameter_is_declared_with_the_configured_value(graph, node_name):
    settings = SECTIONS[node_name]['ros__parameters']
    node = graph.start_node(node_name, node_name, ros_args=['--params-file', str(CONFIG)])
    response = graph.call(
        GetParameters,
        f'/{node_name}/get_parameters',
        GetParameters.Request(names=list(settings)),
        timeout=60,
    )
    assert node.alive(), node.log()
    for name, value in zip(settings, response.values, strict=True):
        assert value.type != ParameterType.PARAMETER_NOT_SET, (
            f'{node_name} declares no parameter {name!r}'
        )
        got = _value(value)
        assert got == value_as_declared(settings[name], got), (
            f'{node_name}.{name}: {got!r} != {settings[name]!r}'
        )


def value_as_declared(configured, got):
    """YAML writes 0.0 as a float and 1 as an int; compare like for like."""
    return float(configured) if isinstance(got, float) else configured
