"""Signal handling for agechat's own tools (the launch runner, the demo).

Finding installed executables and stopping the processes started from them lives in
:mod:`agechat_ros.processes`, which the test harness shares.
"""

import signal
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_signals_ignored():
    """Ignore SIGINT/SIGTERM inside the block (a teardown that must finish), then restore them."""
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def sigterm_raises_keyboard_interrupt() -> None:
    """Make SIGTERM interrupt like Ctrl-C, so that `finally` blocks stop what we started."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
