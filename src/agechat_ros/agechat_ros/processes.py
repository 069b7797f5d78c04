"""Find installed ROS executables and stop the processes started from them.

Executables are lib/<package>/<executable> on AMENT_PREFIX_PATH, as `ros2 run` finds them. Used by
agechat's launch runner and by the graph test harness (:mod:`agechat_ros.testing`).
"""

import os
import signal
import subprocess
from pathlib import Path


def find_executable(package: str, executable: str) -> Path:
    """Locate an installed ROS executable the way `ros2 run` does.

    Raises FileNotFoundError naming the fix when it is not installed.
    """
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
    """Stop a process started with start_new_session=True as `ros2 launch` stops a node.

    SIGINT to its process group, SIGKILL after `timeout_s`; return its exit code.
    """
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
