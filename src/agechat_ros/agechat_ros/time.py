"""builtin_interfaces/Time <-> integer nanoseconds."""

from builtin_interfaces.msg import Time

NS_PER_S = 1_000_000_000


def ns_to_time(ns: int) -> Time:
    """Return a Time message for an instant in integer nanoseconds (negative values clamp to 0)."""
    ns = max(0, int(ns))
    return Time(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def time_to_ns(stamp: Time) -> int:
    """Return the instant of a Time message in integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def is_zero(stamp: Time) -> bool:
    """Return True for the all-zero Time that marks an instant that was not recorded."""
    return stamp.sec == 0 and stamp.nanosec == 0


def elapsed_ms(start: Time, end: Time) -> float:
    """Milliseconds from start to end, or NaN when either instant was not recorded."""
    if is_zero(start) or is_zero(end):
        return float('nan')
    return (time_to_ns(end) - time_to_ns(start)) / 1e6
