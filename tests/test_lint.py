"""The repository passes ruff (ruff.toml): `ruff check` and `ruff format --check` report nothing.

Both run with the venv's ruff (the pinned version) on the whole checkout; a failure shows ruff's
own report, which names each file, line and rule. Every package declares the project's licence.
"""

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'ruff.toml'


def _ruff(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, '-m', 'ruff', *args, '--config', str(CONFIG), '--no-cache']
    return subprocess.run([*command, '.'], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_check_reports_nothing():
    result = _ruff('check')
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_check_reports_nothing():
    result = _ruff('format', '--check')
    assert result.returncode == 0, result.stdout + result.stderr


def _tracked(pattern: str) -> list:
    listed = subprocess.run(
        ['git', 'ls-files', pattern], cwd=REPO, capture_output=True, text=True, check=True
    )
    return [REPO / name for name in listed.stdout.split()]


def test_every_package_declares_the_licence_of_the_license_file():
    text = (REPO / 'LICENSE').read_text()
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    manifests, setups = _tracked('*package.xml'), _tracked('*setup.py')
    assert len(manifests) >= 7 and len(setups) >= 5
    for path in manifests:
        licences = [e.text for e in ET.parse(path).getroot().findall('license')]
        assert licences == ['Apache-2.0'], f'{path}: {licences}'
    for path in setups:
        calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]
        licences = [k.value.value for c in calls for k in c.keywords if k.arg == 'license']
        assert licences == ['Apache-2.0'], f'{path}: {licences}'
