"""The repository passes ruff (ruff.toml): `ruff check` and `ruff format --check` report nothing.

Both run with the venv's ruff (the pinned version) on the whole checkout; a failure shows ruff's
own report, which names each file, line and rule.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'ruff.toml'

# TEMPORARY (issue 10): modules being rewritten right now (parameters, health, the four nodes).
# Delete this list, and its use in _ruff, once they pass ruff. Add nothing to it.
NOT_YET_LINTED = (
    'src/agechat_ros/agechat_ros/params.py',
    'src/agechat_ros/agechat_ros/health.py',
    'src/age_node/age_node/node.py',
    'src/emotion_node/emotion_node/node.py',
    'src/dialogue_node/dialogue_node/node.py',
    'src/avatar_node/avatar_node/node.py',
)


def _ruff(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, '-m', 'ruff', *args, '--config', str(CONFIG), '--no-cache']
    for path in NOT_YET_LINTED:
        command += ['--extend-exclude', path]
    return subprocess.run([*command, '.'], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_check_reports_nothing():
    result = _ruff('check')
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_check_reports_nothing():
    result = _ruff('format', '--check')
    assert result.returncode == 0, result.stdout + result.stderr
