"""Run a ROS 2 XML launch file where `ros2 launch` is not installed.

Supports the subset of ROS 2's XML launch frontend that agechat's launch file uses, with the same
meaning, and refuses anything else with a clear error (so the file stays runnable by `ros2 launch`
on a robot, and this runner never silently ignores an instruction):

- ``<launch>`` with ``<arg name default description>`` and ``<node>`` children;
- ``<node pkg exec name namespace output respawn respawn_delay args if unless>`` with
  ``<param from=FILE/>``,
  ``<param name value/>`` and ``<remap from to/>`` children;
- substitutions ``$(var NAME)``, ``$(env NAME [DEFAULT])``, ``$(dirname)`` and
  ``$(find-pkg-share PKG)``.

Usage::

    python -m agechat_tools.launch_xml launch/agechat.launch.xml camera_topic:=/cam/image_raw
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from agechat_ros.processes import find_executable, find_package_share

#: Tags and attributes this runner understands (a subset of ROS 2's XML frontend).
SUPPORTED = {
    'launch': set(),
    'arg': {'name', 'default', 'description'},
    'node': {
        'pkg',
        'exec',
        'name',
        'namespace',
        'output',
        'respawn',
        'respawn_delay',
        'args',
        'if',
        'unless',
    },
    'param': {'from', 'name', 'value'},
    'remap': {'from', 'to'},
}
CHILDREN = {
    'launch': {'arg', 'node'},
    'node': {'param', 'remap'},
    'arg': set(),
    'param': set(),
    'remap': set(),
}
_SUBSTITUTION = re.compile(r'\$\(([^()]*)\)')


class LaunchError(ValueError):
    """The launch file uses something outside the supported subset, or is invalid."""


@dataclass
class NodeSpec:
    """One <node> after substitution: what to run and how."""

    package: str
    executable: str
    name: str
    namespace: str = ''
    output: str = 'log'
    respawn: bool = False
    respawn_delay: float = 0.0
    args: List[str] = field(default_factory=list)
    params_files: List[str] = field(default_factory=list)
    params: List[Tuple[str, str]] = field(default_factory=list)
    remaps: List[Tuple[str, str]] = field(default_factory=list)

    def command(self) -> List[str]:
        """Return the command line `ros2 launch` would build for this node."""
        cmd = [
            str(find_executable(self.package, self.executable)),
            *self.args,
            '--ros-args',
            '-r',
            f'__node:={self.name}',
        ]
        if self.namespace:
            namespace = self.namespace if self.namespace.startswith('/') else '/' + self.namespace
            cmd += ['-r', f'__ns:={namespace}']
        for path in self.params_files:
            cmd += ['--params-file', path]
        for name, value in self.params:
            cmd += ['-p', f'{name}:={value}']
        for source, target in self.remaps:
            cmd += ['-r', f'{source}:={target}']
        return cmd


def _check_element(element: ET.Element, path: Path) -> None:
    tag = element.tag
    if tag not in SUPPORTED:
        raise LaunchError(
            f"{path}: <{tag}> is not supported by this runner (supported: {sorted(SUPPORTED)})"
        )
    unknown = set(element.attrib) - SUPPORTED[tag]
    if unknown:
        raise LaunchError(
            f'{path}: <{tag}> attribute(s) {sorted(unknown)} are not supported by this runner '
            f'(supported: {sorted(SUPPORTED[tag])})'
        )
    for child in element:
        if child.tag not in CHILDREN[tag]:
            raise LaunchError(
                f'{path}: <{child.tag}> inside <{tag}> is not supported by this runner'
            )
        _check_element(child, path)


class LaunchFile:
    """A parsed launch file: its declared arguments and nodes."""

    def __init__(self, path: Path):
        self.path = Path(path).resolve()
        root = ET.parse(self.path).getroot()
        if root.tag != 'launch':
            raise LaunchError(f'{self.path}: the root element must be <launch>, not <{root.tag}>')
        _check_element(root, self.path)
        self.root = root

    def arguments(self) -> Dict[str, Optional[str]]:
        """Return the declared launch arguments and their raw defaults (None: required)."""
        return {a.get('name'): a.get('default') for a in self.root.iter('arg')}

    def describe_arguments(self) -> str:
        """Human-readable list of the launch arguments (like `ros2 launch -s`)."""
        lines = []
        for a in self.root.iter('arg'):
            lines.append(
                f"  {a.get('name')}:={a.get('default', '<required>')}\n"
                f"      {a.get('description', '')}"
            )
        return '\n'.join(lines)

    def substitute(self, text: str, values: Dict[str, str]) -> str:
        """Expand $(...) substitutions in `text` using the launch argument `values`."""

        def expand(match: re.Match) -> str:
            words = match.group(1).split()
            if not words:
                raise LaunchError(f'{self.path}: empty substitution in {text!r}')
            kind, rest = words[0], words[1:]
            if kind == 'var' and len(rest) == 1:
                if rest[0] not in values:
                    raise LaunchError(
                        f"{self.path}: $(var {rest[0]}) refers to an undeclared launch argument"
                    )
                return values[rest[0]]
            if kind == 'env' and len(rest) in (1, 2):
                if rest[0] not in os.environ and len(rest) == 1:
                    raise LaunchError(f'{self.path}: environment variable {rest[0]} is not set')
                return os.environ.get(rest[0], rest[1] if len(rest) == 2 else '')
            if kind == 'dirname' and not rest:
                return str(self.path.parent)
            if kind == 'find-pkg-share' and len(rest) == 1:
                return str(find_package_share(rest[0]))
            raise LaunchError(
                f'{self.path}: substitution $({match.group(1)}) is not supported by this runner'
            )

        return _SUBSTITUTION.sub(expand, text)

    def condition(self, value: str) -> bool:
        """Evaluate an if/unless value as ROS 2 launch does: true/1 or false/0, any case."""
        text = value.strip().lower()
        if text in ('true', '1'):
            return True
        if text in ('false', '0'):
            return False
        raise LaunchError(
            f"{self.path}: an if/unless condition must be true, false, 1 or 0, not {value!r}"
        )

    def resolve(self, overrides: Dict[str, str]) -> Tuple[Dict[str, str], List[NodeSpec]]:
        """Apply argument overrides, then return the argument values and the node specs."""
        declared = self.arguments()
        unknown = set(overrides) - set(declared)
        if unknown:
            raise LaunchError(
                f'unknown launch argument(s) {sorted(unknown)}; this file declares:\n'
                + self.describe_arguments()
            )
        values: Dict[str, str] = {}
        for name, default in declared.items():  # in order: a default may use earlier arguments
            if name in overrides:
                values[name] = overrides[name]
            elif default is None:
                raise LaunchError(f"launch argument '{name}' is required; pass {name}:=VALUE")
            else:
                values[name] = self.substitute(default, values)
        nodes = []
        for element in self.root.iter('node'):

            def attr(key: str, default: str = '', element: ET.Element = element) -> str:
                return self.substitute(element.get(key, default), values)

            if 'if' in element.attrib and not self.condition(attr('if')):
                continue
            if 'unless' in element.attrib and self.condition(attr('unless')):
                continue
            respawn = attr('respawn', 'false').lower()
            if respawn not in ('true', 'false'):
                raise LaunchError(
                    f"{self.path}: respawn must be 'true' or 'false', not {respawn!r}"
                )
            spec = NodeSpec(
                package=attr('pkg'),
                executable=attr('exec'),
                name=attr('name') or attr('exec'),
                namespace=attr('namespace'),
                output=attr('output', 'log'),
                respawn=respawn == 'true',
                respawn_delay=float(attr('respawn_delay', '0')),
                args=shlex.split(attr('args')),
            )
            if not spec.package or not spec.executable:
                raise LaunchError(f'{self.path}: <node> needs pkg and exec')
            for child in element:
                if child.tag == 'remap':
                    spec.remaps.append(
                        (
                            self.substitute(child.get('from', ''), values),
                            self.substitute(child.get('to', ''), values),
                        )
                    )
                elif 'from' in child.attrib:
                    spec.params_files.append(self.substitute(child.get('from'), values))
                else:
                    spec.params.append(
                        (child.get('name'), self.substitute(child.get('value', ''), values))
                    )
            nodes.append(spec)
        return values, nodes


class _Supervised:
    """One node process with its restart bookkeeping."""

    def __init__(self, spec: NodeSpec, log_dir: Path, echo: bool):
        self.spec = spec
        self.log_path = log_dir / f'{spec.name}.log'
        self.echo = echo and spec.output == 'screen'
        self.starts = 0
        self.exit_codes: List[int] = []
        self.popen: Optional[subprocess.Popen] = None
        self.restart_at: Optional[float] = None
        self.peak_rss_mb: Optional[float] = None
        self.peak_pss_mb: float = 0.0

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_path, 'ab')
        log.write(f'--- start #{self.starts}: {" ".join(self.spec.command())}\n'.encode())
        log.flush()
        self.popen = subprocess.Popen(
            self.spec.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(self.popen, log), daemon=True).start()

    def _pump(self, popen: subprocess.Popen, log) -> None:
        for line in iter(popen.stdout.readline, b''):
            log.write(line)
            log.flush()
            if self.echo:
                sys.stdout.write(f'[{self.spec.name}] {line.decode(errors="replace")}')
                sys.stdout.flush()
        log.close()


class Launcher:
    """Starts the nodes of a launch file, respawns those marked respawn, stops all on a signal.

    SIGINT and SIGTERM stop the nodes, as they stop `ros2 launch`.
    """

    def __init__(self, nodes: List[NodeSpec], log_dir: Path, echo: bool = True):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.nodes = [_Supervised(spec, self.log_dir, echo) for spec in nodes]
        self._stopping = threading.Event()
        self._last_sample = 0.0

    def start(self) -> None:
        """Start every node once."""
        for node in self.nodes:
            node.start()

    def poll(self) -> None:
        """Record exits, sample memory once a second, restart respawning nodes when due."""
        now = time.monotonic()
        sample = now - self._last_sample >= 1.0
        if sample:
            self._last_sample = now
        for node in self.nodes:
            if sample and node.popen is not None and node.popen.poll() is None:
                node.peak_pss_mb = max(node.peak_pss_mb, pss_mb(node.popen.pid) or 0.0)
            if (
                node.popen is not None
                and node.popen.poll() is not None
                and node.restart_at is None
            ):
                node.exit_codes.append(node.popen.returncode)
                print(
                    f'[launch] {node.spec.name} exited with code {node.popen.returncode}'
                    + (
                        f'; respawning in {node.spec.respawn_delay:.1f} s'
                        if node.spec.respawn
                        else ''
                    ),
                    flush=True,
                )
                node.restart_at = (
                    now + node.spec.respawn_delay if node.spec.respawn else float('inf')
                )
            if (
                node.restart_at is not None
                and now >= node.restart_at
                and not self._stopping.is_set()
            ):
                node.restart_at = None
                node.start()

    def run(self, duration_s: Optional[float] = None) -> None:
        """Supervise until SIGINT/SIGTERM (or `duration_s`), then stop everything."""

        def request_stop(signum, frame):
            self._stopping.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        deadline = time.monotonic() + duration_s if duration_s else None
        self.start()
        while not self._stopping.is_set() and (deadline is None or time.monotonic() < deadline):
            self.poll()
            time.sleep(0.1)
        self.stop()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every node: SIGINT (as `ros2 launch` on Ctrl-C), SIGKILL after `timeout_s`."""
        self._stopping.set()
        running = [n for n in self.nodes if n.popen is not None and n.popen.poll() is None]
        for node in running:
            node.peak_rss_mb = peak_rss_mb(node.popen.pid)
            node.peak_pss_mb = max(node.peak_pss_mb, pss_mb(node.popen.pid) or 0.0)
        for node in running:
            os.killpg(node.popen.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        for node in running:
            try:
                node.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(node.popen.pid, signal.SIGKILL)
                node.popen.wait(5)
            node.exit_codes.append(node.popen.returncode)

    def status(self) -> dict:
        """Return per node its number of starts and its exit codes (the last: the shutdown's)."""
        return {
            n.spec.name: {
                'starts': n.starts,
                'exit_codes': n.exit_codes,
                'log': str(n.log_path),
                'peak_rss_mb': n.peak_rss_mb,
                'peak_pss_mb': n.peak_pss_mb or None,
            }
            for n in self.nodes
        }


def peak_rss_mb(pid: int) -> Optional[float]:
    """Peak resident memory (VmHWM) of a running process in MB, or None when unavailable."""
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def pss_mb(pid: int) -> Optional[float]:
    """Return the proportional set size of a process in MB, or None when unavailable.

    That is its private memory plus its share of the pages (such as torch's libraries) that it
    shares with other processes. Summed over processes it does not double count, unlike RSS.
    """
    try:
        for line in Path(f'/proc/{pid}/smaps_rollup').read_text().splitlines():
            if line.startswith('Pss:'):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def parse_overrides(items: List[str]) -> Dict[str, str]:
    """Parse `name:=value` launch arguments."""
    overrides = {}
    for item in items:
        if ':=' not in item:
            raise LaunchError(f"launch arguments are written name:=value, not {item!r}")
        name, value = item.split(':=', 1)
        overrides[name] = value
    return overrides


def main(argv: Optional[List[str]] = None) -> int:
    """Run a launch file from the command line until a signal; return the exit status."""
    parser = argparse.ArgumentParser(
        description='Run an agechat XML launch file (subset of `ros2 launch`).'
    )
    parser.add_argument('launch_file', type=Path)
    parser.add_argument('arguments', nargs='*', help='launch arguments, name:=value')
    parser.add_argument(
        '--log-dir', type=Path, default=Path('log/launch'), help='per-node log files'
    )
    parser.add_argument(
        '--status-file', type=Path, help='write node starts/exit codes as JSON at exit'
    )
    parser.add_argument('--duration', type=float, help='stop after this many seconds')
    parser.add_argument(
        '-s', '--show-args', action='store_true', help='list the launch arguments and exit'
    )
    parser.add_argument('--quiet', action='store_true', help="do not echo output='screen' nodes")
    args = parser.parse_args(argv)
    try:
        launch_file = LaunchFile(args.launch_file)
        if args.show_args:
            print(launch_file.describe_arguments())
            return 0
        _, nodes = launch_file.resolve(parse_overrides(args.arguments))
        for node in nodes:
            node.command()  # fail now, with the fix, if an executable is missing
    except (LaunchError, FileNotFoundError, ET.ParseError) as error:
        print(f'[launch] error: {error}', file=sys.stderr)
        return 2
    launcher = Launcher(nodes, args.log_dir, echo=not args.quiet)
    print(
        f'[launch] starting {len(nodes)} node(s): {", ".join(n.name for n in nodes)} '
        f'(logs in {args.log_dir})',
        flush=True,
    )
    launcher.run(args.duration)
    if args.status_file:
        args.status_file.write_text(json.dumps(launcher.status(), indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
