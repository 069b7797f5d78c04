"""The pinned dependency file and the environment agree.

Every direct pin is installed at its pinned version, and every Python package it provides imports
(in a fresh interpreter each, so one broken import cannot hide behind another's side effects).
"""

from __future__ import annotations

import importlib.metadata as metadata
import subprocess
import sys
from pathlib import Path

import pytest

REQUIREMENTS = Path(__file__).resolve().parents[1] / 'requirements.txt'
MARKER = '# --- transitive dependencies (pip freeze) ---'


def direct_pins() -> dict:
    head = REQUIREMENTS.read_text().partition(MARKER)[0]
    pins = {}
    for line in head.splitlines():
        line = line.split('#')[0].strip()
        if line:
            name, version = line.split('==')
            pins[name] = version
    return pins


def top_level_modules(dist: metadata.Distribution) -> list:
    """Return the importable top-level modules a distribution installs into site-packages."""
    modules = set()
    for file in dist.files or []:
        parts = file.parts
        if len(parts) >= 2 and file.suffix == '.py' and parts[0].isidentifier():
            modules.add(parts[0])  # a package (regular or namespace)
        elif (
            len(parts) == 1
            and file.suffix == '.py'
            and file.stem.isidentifier()
            and file.stem != '__init__'
        ):
            modules.add(file.stem)
    return sorted(modules)


PINS = direct_pins()


def test_direct_section_is_not_empty():
    assert {'ros-rclpy', 'torch', 'torchaudio', 'transformers', 'vosk', 'silero-vad'} <= set(PINS)


@pytest.mark.parametrize('name', sorted(PINS))
def test_pinned_package_installed_and_importable(name):
    dist = metadata.distribution(name)
    assert dist.version == PINS[name], f'{name}: installed {dist.version}, pinned {PINS[name]}'
    modules = top_level_modules(dist)
    if not modules:  # build-only wheels (CMake modules, ament resources): they must ship files
        assert any(
            str(f).startswith(('../../../share', 'share')) or '/share/' in str(f)
            for f in dist.files or []
        ), f'{name} installs neither a Python module nor data files'
        return
    for module in modules:
        result = subprocess.run(
            [sys.executable, '-c', f'import {module}'], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f'{name}: import {module} failed:\n{result.stderr[-2000:]}'
