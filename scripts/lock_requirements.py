"""Re-pin requirements.txt: keep its direct section, replace the transitive section by pip freeze.

Run `make lock` after installing a new or upgraded direct dependency into .venv.
"""

import pathlib
import subprocess
import sys

REQUIREMENTS = pathlib.Path(__file__).resolve().parents[1] / 'requirements.txt'
MARKER = '# --- transitive dependencies (pip freeze) ---'


def normalise(name: str) -> str:
    return name.lower().replace('_', '-')


def main() -> int:
    head, _, _ = REQUIREMENTS.read_text().partition(MARKER)
    direct = {normalise(line.split('==')[0]) for line in head.splitlines() if '==' in line}
    frozen = subprocess.run([sys.executable, '-m', 'pip', 'freeze'], check=True, capture_output=True,
                            text=True).stdout.splitlines()
    names = {normalise(line.split('==')[0]) for line in frozen if '==' in line}
    pinned = {normalise(line.split('==')[0]): line for line in frozen if '==' in line}
    head_lines = []
    for line in head.splitlines():   # refresh the direct pins' versions too
        key = normalise(line.split('==')[0]) if '==' in line else None
        head_lines.append(pinned.get(key, line) if key else line)
    transitive = []
    for line in sorted(frozen, key=str.lower):
        if '==' not in line:
            continue
        name = normalise(line.split('==')[0])
        # The ROS wheels also register an egg-info under the bare package name: not installable.
        if name in direct or ('_' in line.split('==')[0] and f'ros-{name}' in names):
            continue
        transitive.append(line)
    REQUIREMENTS.write_text('\n'.join(head_lines).rstrip('\n') + '\n\n' + MARKER + '\n' + '\n'.join(transitive) + '\n')
    print(f'requirements.txt: {len(direct)} direct, {len(transitive)} transitive pins')
    return 0


if __name__ == '__main__':
    sys.exit(main())
