"""Finding installed ROS executables (lib/<package>/<executable> on AMENT_PREFIX_PATH)."""

import os
from pathlib import Path


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
        f'run `make setup` (colcon build) and source scripts/env.sh')


def find_package_share(package: str) -> Path:
    """Return share/<package> of an installed package, as $(find-pkg-share) does."""
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix and Path(prefix, 'share', 'ament_index', 'resource_index', 'packages', package).exists():
            return Path(prefix, 'share', package)
    raise FileNotFoundError(f"package '{package}' not found on AMENT_PREFIX_PATH; run `make setup`")
