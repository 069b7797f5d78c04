"""Finding installed ROS executables (lib/<package>/<executable> on AMENT_PREFIX_PATH) and stopping
the processes started from them."""

import os
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

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


def find_executable(package: str, executable: str) -> Path:
    """Locate an installed ROS executable the way `ros2 run` does; raise FileNotFoundError with the fix."""
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if not prefix:
            continue
        candidate = Path(prefix, 'lib', package, executable)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(
        f"executable '{executable}' of package '{package}' not found on AMENT_PREFIX_PATH; "
        f'run `make setup` (colcon build) and source scripts/env.sh'
    )


def find_package_share(package: str) -> Path:
    """Return share/<package> of an installed package, as $(find-pkg-share) does."""
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if (
            prefix
            and Path(
                prefix, 'share', 'ament_index', 'resource_index', 'packages', package
            ).exists()
        ):
            return Path(prefix, 'share', package)
    raise FileNotFoundError(
        f"package '{package}' not found on AMENT_PREFIX_PATH; run `make setup`"
    )


def interrupt_then_kill(popen: subprocess.Popen, timeout_s: float) -> int:
    """Stop a process started with start_new_session=True as `ros2 launch` stops a node: SIGINT to its
    process group, SIGKILL after `timeout_s`; return its exit code."""
    if popen.poll() is None:
        try:
            os.killpg(popen.pid, signal.SIGINT)
            popen.wait(timeout_s)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(5)
    return popen.wait()
