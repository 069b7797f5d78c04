"""Point the ROS 2 PyPI wheels' CMake files at this virtual environment's Python.

The wheels are built in a manylinux container, and their exported CMake targets name that
container's Python headers and numpy include directory (/opt/python/cp311-cp311/...). rosidl's
Python generator links against those targets, so a build fails with "Imported target ...
includes non-existent path" until they are rewritten. Usage: python fix_ros_wheel_cmake.py VENV
"""

import pathlib
import re
import sys
import sysconfig

import numpy

# A Python include dir or numpy include dir inside a CMake list ("a;b;c"). Matching any prefix, not
# only the builder's, keeps the fix idempotent and lets it repair a venv fixed with another Python.
PYTHON_INCLUDE = re.compile(r'[^";]*/include/python3\.\d+(?=[";])')
NUMPY_INCLUDE = re.compile(r'[^";]*/site-packages/numpy/_core/include(?=[";])')


def main(venv: str) -> int:
    """Rewrite the include paths in the CMake files under VENV/share; return the exit status."""
    python_include = sysconfig.get_paths()['include']
    numpy_include = numpy.get_include()
    changed = 0
    for path in pathlib.Path(venv, 'share').rglob('*.cmake'):
        text = path.read_text(errors='surrogateescape')
        if 'INTERFACE_INCLUDE_DIRECTORIES' not in text:
            continue
        fixed = NUMPY_INCLUDE.sub(numpy_include, PYTHON_INCLUDE.sub(python_include, text))
        if fixed != text:
            path.write_text(fixed, errors='surrogateescape')
            changed += 1
    print(f'fix_ros_wheel_cmake: rewrote {changed} file(s)')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
