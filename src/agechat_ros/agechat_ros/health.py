"""Counting, throttled logging and /diagnostics for what a node processes and drops.

Every agechat node owns one :class:`NodeHealth`. A malformed message is handed to
:meth:`NodeHealth.drop` with a reason: it is counted under that reason and logged at most once per
`log_period_s` per reason, and the node carries on. Counters and latest values are published as
``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics`` (the standard topic robots already
monitor) every `period_s`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Dict

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


class NodeHealth:
    """Counters of processed and dropped messages for one node, published on /diagnostics."""

    def __init__(self, node, period_s: float = 1.0, log_period_s: float = 5.0):
        self._node = node
        self._lock = threading.Lock()
        self.counts: Counter = Counter()
        self.drops: Counter = Counter()
        self.values: Dict[str, str] = {}
        self._last_log: Dict[str, float] = {}
        self._log_period_s = log_period_s
        self._publisher = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._timer = node.create_timer(period_s, self.publish) if period_s > 0 else None

    def set_period(self, period_s: float) -> None:
        """Publish /diagnostics every `period_s` seconds from now on."""
        if self._timer is None:
            self._timer = self._node.create_timer(period_s, self.publish)
        else:
            self._timer.timer_period_ns = int(period_s * 1e9)

    def count(self, name: str, n: int = 1) -> None:
        """Add n to the counter `name` (e.g. 'frames_processed')."""
        with self._lock:
            self.counts[name] += n

    def set(self, name: str, value) -> None:
        """Record a latest value shown on /diagnostics (e.g. 'latency_ms')."""
        with self._lock:
            self.values[name] = str(value)

    def drop(self, reason: str, detail: str = '') -> None:
        """Count a dropped input under `reason` and log it, throttled per reason."""
        now = time.monotonic()
        with self._lock:
            self.drops[reason] += 1
            total = self.drops[reason]
            should_log = now - self._last_log.get(reason, -1e9) >= self._log_period_s
            if should_log:
                self._last_log[reason] = now
        if should_log:
            self._node.get_logger().warning(
                f'dropped input ({reason}): {detail} [{total} dropped for this reason so far]'
            )

    def warn_throttled(self, key: str, text: str) -> None:
        """Log a warning at most once per log period for `key` (without counting a drop)."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_log.get(key, -1e9) < self._log_period_s:
                return
            self._last_log[key] = now
        self._node.get_logger().warning(text)

    def status(self) -> DiagnosticStatus:
        """Return the node's DiagnosticStatus: WARN while drops are counted, else OK."""
        with self._lock:
            items = [KeyValue(key=k, value=str(v)) for k, v in sorted(self.counts.items())]
            items += [
                KeyValue(key=f'dropped_{k}', value=str(v)) for k, v in sorted(self.drops.items())
            ]
            items += [KeyValue(key=k, value=v) for k, v in sorted(self.values.items())]
            dropped = sum(self.drops.values())
        level = DiagnosticStatus.WARN if dropped else DiagnosticStatus.OK
        message = f'{dropped} input(s) dropped' if dropped else 'ok'
        return DiagnosticStatus(
            level=level,
            name=self._node.get_fully_qualified_name(),
            message=message,
            hardware_id='agechat',
            values=items,
        )

    def publish(self) -> None:
        """Publish the current status on /diagnostics."""
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        array.status = [self.status()]
        self._publisher.publish(array)
