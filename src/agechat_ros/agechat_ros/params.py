"""Node parameters: declared with honest descriptors, validated at start and at run time.

A node lists its parameters as :class:`Param` specs. :func:`declare_and_read` declares them all
with a descriptor that carries the description, the numeric range (``IntegerRange`` /
``FloatingPointRange``, so ``ros2 param describe`` shows it and rclpy refuses out-of-range sets)
and ``read_only`` for every parameter that only takes effect at start. It reads and checks every
value and raises :class:`ParameterError` naming *each* bad parameter and how to fix it.

Parameters marked ``dynamic`` may change while the node runs (``ros2 param set``):
:func:`validate_changes` applies the same checks to a proposed change, so a bad value is refused
with the same sentence as at start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FIX_HINT = (
    'Set them in the parameter YAML (config/agechat.yaml) or with --ros-args -p name:=value.'
)


class ParameterError(ValueError):
    """One or more parameters are invalid; the text lists each with what to fix."""


@dataclass
class Param:
    """One node parameter: name, default (its type is the parameter's type), description, checks.

    `choices` limits the value to a set; `low`/`high` bound numbers (inclusive) and become the
    descriptor's range; `check` is any extra predicate, with `requirement` the sentence that
    explains it ("must be an existing file"). `dynamic` parameters may be changed at run time
    and take effect on the next message; all others are read-only once the node runs.
    """

    name: str
    default: Any
    description: str
    choices: Optional[Sequence[Any]] = None
    low: Optional[float] = None
    high: Optional[float] = None
    check: Optional[Callable[[Any], bool]] = None
    requirement: str = ''
    dynamic: bool = False

    def problem(self, value: Any) -> Optional[str]:
        """Return why `value` is invalid, or None."""
        if isinstance(value, float) and not math.isfinite(value):
            return 'must be a finite number'
        if self.choices is not None and value not in self.choices:
            return f'must be one of {list(self.choices)}'
        if self.low is not None and value < self.low:
            return f'must be >= {self.low}'
        if self.high is not None and value > self.high:
            return f'must be <= {self.high}'
        if self.check is not None and not self.check(value):
            return self.requirement or 'is not valid'
        return None

    def descriptor(self, parameter_type: int = 0) -> ParameterDescriptor:
        """Return the ROS descriptor: description, range, choices and whether it is read-only."""
        notes = []
        if self.choices is not None:
            notes.append(f'one of {list(self.choices)}')
        if self.requirement:
            notes.append(self.requirement)
        notes.append(
            'changes take effect on the next message'
            if self.dynamic
            else 'read-only while the node runs: set it at start'
        )
        descriptor = ParameterDescriptor(
            description=self.description,
            type=parameter_type,
            read_only=not self.dynamic,
            additional_constraints='; '.join(notes),
        )
        is_number = isinstance(self.default, (int, float)) and not isinstance(self.default, bool)
        if is_number and (self.low is not None or self.high is not None):
            if isinstance(self.default, int):
                low = _INT64_MIN if self.low is None else int(math.ceil(self.low))
                high = _INT64_MAX if self.high is None else int(math.floor(self.high))
                descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=0)]
            else:
                low = -math.inf if self.low is None else float(self.low)
                high = math.inf if self.high is None else float(self.high)
                descriptor.floating_point_range = [
                    FloatingPointRange(from_value=low, to_value=high, step=0.0)
                ]
        return descriptor

    def coerce(self, value: Any) -> Any:
        """Return `value` as the spec's type where ROS would widen it (an int for a float)."""
        widen = isinstance(value, int) and not isinstance(value, bool)
        if isinstance(self.default, float) and widen:
            return float(value)
        return value


CrossCheck = Callable[[SimpleNamespace], Optional[str]]


def declare_and_read(
    node, specs: Iterable[Param], cross_check: Optional[CrossCheck] = None
) -> SimpleNamespace:
    """Declare every spec on `node`, read the values and validate them all.

    Each parameter is first declared without its range (so an out-of-range override gets our
    message, not rclpy's exception), checked, then given its full descriptor (range, read-only).
    `cross_check(values)` may return a sentence about values that only fail together. Returns a
    namespace with one attribute per parameter; raises ParameterError listing every problem.
    """
    values, problems, valid = {}, [], []
    for spec in specs:
        try:
            parameter = node.declare_parameter(
                spec.name, spec.default, ParameterDescriptor(description=spec.description)
            )
            value = spec.coerce(parameter.value)
        except Exception as error:  # noqa: BLE001 - rclpy raises several types for a wrong type
            problems.append(f"  {spec.name}: {error} (expected a {type(spec.default).__name__})")
            continue
        reason = spec.problem(value)
        if reason:
            problems.append(f'  {spec.name} = {value!r} {reason}')
        else:
            valid.append(spec)
        values[spec.name] = value
    if not problems and cross_check is not None:
        reason = cross_check(SimpleNamespace(**values))
        if reason:
            problems.append(f'  {reason}')
    if problems:
        raise ParameterError(
            f'{node.get_name()}: invalid parameter(s):\n' + '\n'.join(problems) + '\n' + _FIX_HINT
        )
    for spec in valid:
        parameter_type = node.describe_parameter(spec.name).type
        node.set_descriptor(spec.name, spec.descriptor(parameter_type))
    return SimpleNamespace(**values)


def validate_changes(
    specs: Mapping[str, Param],
    current: SimpleNamespace,
    changes: Mapping[str, Any],
    cross_check: Optional[CrossCheck] = None,
) -> Dict[str, Any] | str:
    """Check a run-time change of parameters with the start-time rules.

    Returns the coerced new values by name, or the reason (one sentence) why the change is
    refused. Names that are not in `specs` (e.g. rclpy's own ``use_sim_time``) pass through.
    """
    accepted: Dict[str, Any] = {}
    for name, raw in changes.items():
        spec = specs.get(name)
        if spec is None:
            continue
        if not spec.dynamic:
            return f'{name} is read-only while the node runs; set it at start and restart the node'
        value = spec.coerce(raw)
        reason = spec.problem(value)
        if reason:
            return f'{name} = {value!r} {reason}'
        accepted[name] = value
    if cross_check is not None:
        reason = cross_check(SimpleNamespace(**{**vars(current), **accepted}))
        if reason:
            return reason
    return accepted
