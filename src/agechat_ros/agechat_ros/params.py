"""Declare node parameters with descriptions and validate them once, at start.

A node lists its parameters as :class:`Param` specs; :func:`declare_and_read` declares them all
(with descriptions visible in ``ros2 param describe``), reads them, checks each value and raises
:class:`ParameterError` naming *every* bad parameter and how to fix it. :func:`run_node` turns that
into a clean exit with status 2 and a readable message instead of a traceback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Optional, Sequence

from rcl_interfaces.msg import ParameterDescriptor


class ParameterError(ValueError):
    """One or more parameters are invalid; the text lists each with what to fix."""


@dataclass
class Param:
    """One node parameter: name, default (its type is the parameter's type), description and checks.

    `choices` limits the value to a set; `low`/`high` bound numbers (inclusive); `check` is any
    extra predicate, with `requirement` the sentence that explains it ("must be an existing file").
    """

    name: str
    default: Any
    description: str
    choices: Optional[Sequence[Any]] = None
    low: Optional[float] = None
    high: Optional[float] = None
    check: Optional[Callable[[Any], bool]] = None
    requirement: str = ''

    def problem(self, value: Any) -> Optional[str]:
        """Return why `value` is invalid, or None."""
        if self.choices is not None and value not in self.choices:
            return f'must be one of {list(self.choices)}'
        if self.low is not None and value < self.low:
            return f'must be >= {self.low}'
        if self.high is not None and value > self.high:
            return f'must be <= {self.high}'
        if self.check is not None and not self.check(value):
            return self.requirement or 'is not valid'
        return None


def declare_and_read(node, specs: Iterable[Param]) -> SimpleNamespace:
    """Declare every spec on `node`, read the values and validate them all.

    Returns a namespace with one attribute per parameter. Raises ParameterError listing every
    invalid value (wrong type included) with the node's name and the fix.
    """
    values, problems = {}, []
    for spec in specs:
        descriptor = ParameterDescriptor(description=spec.description)
        try:
            parameter = node.declare_parameter(spec.name, spec.default, descriptor)
            value = parameter.value
        except Exception as error:  # noqa: BLE001 - rclpy raises several types for a wrong type
            problems.append(f"  {spec.name}: {error} (expected a {type(spec.default).__name__})")
            continue
        if isinstance(spec.default, float) and isinstance(value, int):
            value = float(value)
        reason = spec.problem(value)
        if reason:
            problems.append(f'  {spec.name} = {value!r} {reason}')
        values[spec.name] = value
    if problems:
        raise ParameterError(
            f'{node.get_name()}: invalid parameter(s):\n'
            + '\n'.join(problems)
            + '\nSet them in the parameter YAML (config/agechat.yaml) or with --ros-args -p name:=value.'
        )
    return SimpleNamespace(**values)


def run_node(
    node_factory: Callable[[], Any], args: Optional[list] = None, executor_threads: int = 1
) -> int:
    """Standard main(): init rclpy, build the node, spin until Ctrl-C/SIGINT, shut down cleanly.

    Start-up errors (ParameterError, missing model files as FileNotFoundError) are printed as one
    clear message and give exit status 2.
    """
    import rclpy
    from rclpy.executors import (
        ExternalShutdownException,
        MultiThreadedExecutor,
        SingleThreadedExecutor,
    )

    rclpy.init(args=args)
    node = executor = None
    try:
        node = node_factory()
        executor = (
            MultiThreadedExecutor(num_threads=executor_threads)
            if executor_threads > 1
            else SingleThreadedExecutor()
        )
        executor.add_node(node)
        executor.spin()
    except (ParameterError, FileNotFoundError) as error:
        print(f'[FATAL] {error}', file=sys.stderr, flush=True)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if executor is not None:
            executor.shutdown()  # no callback may run while the node is torn down
        if node is not None:
            close = getattr(node, 'close', None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
