"""Graph test harness: real node processes, real DDS, no sleeps (for pytest; needs pytest).

A :class:`Graph` owns one rclpy context in the test process (the "probe" node, spun in a
background thread) and any number of node processes started from their installed executables,
all on the same ``ROS_DOMAIN_ID`` with ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``. Tests publish
and collect through the probe, wait until endpoints are matched instead of sleeping, and stop
nodes with SIGINT (then SIGKILL). Each node's output goes to a log file that the pytest fixture
prints when a test fails.

Every test folder's ``conftest.py`` imports the ``graph`` fixture and the report hook from here
(``from agechat_ros.testing import graph, pytest_runtest_makereport``), so the same tests run
under ``make test`` and ``colcon test``. Usage::

    node = graph.start_node('emotion_node', 'emotion_node', parameters={'max_rate_hz': 30.0})
    replies = graph.collect('/agechat/face_emotion', FaceEmotion)
    pub = graph.publisher('/camera/image_raw', Image)
    graph.wait_for_subscribers(pub)
    pub.publish(msg)
    replies.wait_for(1, timeout=10)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

import pytest
import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, QoSHistoryPolicy

from agechat_ros.processes import find_executable, interrupt_then_kill


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, poll_s: float = 0.02
) -> None:
    """Poll `predicate` until it is true; raise TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f'timed out after {timeout:.1f} s waiting for {what}')
        time.sleep(poll_s)


class NodeProcess:
    """One started process: its command, log file and lifecycle."""

    def __init__(self, name: str, command: List[str], env: Dict[str, str], log_path: Path):
        self.name = name
        self.command = command
        self.log_path = log_path
        self._log_file = open(log_path, 'wb')
        self.popen = subprocess.Popen(
            command,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.returncode: Optional[int] = None

    def alive(self) -> bool:
        """Return True while the process runs."""
        return self.popen.poll() is None

    def log(self) -> str:
        """Everything the process printed so far."""
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log_path.read_text(errors='replace')

    def stop(self, timeout: float = 10.0) -> int:
        """Stop the process: SIGINT (as Ctrl-C or ros2 launch), SIGKILL after `timeout` s.

        Return the exit code.
        """
        interrupt_then_kill(self.popen, timeout)
        self.returncode = self.popen.returncode
        self._log_file.close()
        return self.returncode


class Collector:
    """Thread-safe list of the messages received on one topic."""

    def __init__(self, topic: str):
        self.topic = topic
        self.messages: list = []
        self.receive_times_ns: List[int] = []
        self._cond = threading.Condition()

    def _on_message(self, msg) -> None:
        with self._cond:
            self.messages.append(msg)
            self.receive_times_ns.append(time.time_ns())
            self._cond.notify_all()

    def wait_for(
        self,
        count: int = 1,
        timeout: float = 10.0,
        predicate: Optional[Callable[[list], bool]] = None,
    ) -> list:
        """Block until `count` messages arrived (and `predicate(messages)` holds); return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count or (
                predicate is not None and not predicate(self.messages)
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f'{self.topic}: got {len(self.messages)} message(s) in {timeout:.1f} s, '
                        f'wanted {count}' + (' matching the predicate' if predicate else '')
                    )
                self._cond.wait(remaining)
            return list(self.messages)

    def snapshot(self) -> list:
        """Return the messages received so far."""
        with self._cond:
            return list(self.messages)

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._cond:
            self.messages.clear()
            self.receive_times_ns.clear()


def publish_until_answered(publisher, msg, answers: Collector, timeout: float = 20.0):
    """Publish the stamped `msg` again every second until `answers` holds a message with its stamp.

    For best-effort inputs (camera frames): one publish may be lost. Returns the answer; raises
    TimeoutError naming the topic and the stamp after `timeout` s.
    """
    stamp = msg.header.stamp

    def answered(messages: list) -> bool:
        return any(m.header.stamp == stamp for m in messages)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publisher.publish(msg)
        try:
            got = answers.wait_for(1, timeout=1.0, predicate=answered)
        except TimeoutError:
            continue
        return next(m for m in got if m.header.stamp == stamp)
    raise TimeoutError(
        f'{answers.topic}: no answer to the message stamped {stamp.sec}.{stamp.nanosec:09d} '
        f'in {timeout:.1f} s'
    )


def reliable_qos(depth: int = 10) -> QoSProfile:
    """Reliable, keep-last QoS used by agechat's event topics."""
    return QoSProfile(
        depth=depth, reliability=QoSReliabilityPolicy.RELIABLE, history=QoSHistoryPolicy.KEEP_LAST
    )


class Graph:
    """Nodes under test plus the test's own probe node, on one isolated DDS domain."""

    def __init__(self, domain_id: int, workdir: Path):
        self.domain_id = domain_id
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.processes: List[NodeProcess] = []
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('agechat_test_probe', context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._spin_thread = threading.Thread(target=self._spin, daemon=True)
        self._spin_thread.start()

    # -- processes ----------------------------------------------------------------------------
    def env(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """Return the environment for node processes: this one, pinned to the graph's domain."""
        env = dict(os.environ)
        env.update(
            {
                'ROS_DOMAIN_ID': str(self.domain_id),
                'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
                'PYTHONUNBUFFERED': '1',
                'RCUTILS_COLORIZED_OUTPUT': '0',
            }
        )
        env.update(extra or {})
        return env

    def start_process(
        self, name: str, command: List[str], env: Optional[Dict[str, str]] = None
    ) -> NodeProcess:
        """Start any command as a graph process, its output logged to <workdir>/<name>.log."""
        process = NodeProcess(
            name, [str(c) for c in command], self.env(env), self.workdir / f'{name}.log'
        )
        self.processes.append(process)
        return process

    def start_node(
        self,
        package: str,
        executable: str,
        name: Optional[str] = None,
        parameters: Optional[dict] = None,
        remappings: Optional[Dict[str, str]] = None,
        env: Optional[Dict[str, str]] = None,
        ros_args: Iterable[str] = (),
    ) -> NodeProcess:
        """Start an installed node executable with parameters (in a params file) and remappings."""
        name = name or executable
        command = [
            str(find_executable(package, executable)),
            '--ros-args',
            '-r',
            f'__node:={name}',
        ]
        if parameters:
            params_file = self.workdir / f'{name}.params.yaml'
            params_file.write_text(
                yaml.safe_dump({'/**': {'ros__parameters': parameters}}, allow_unicode=True)
            )
            command += ['--params-file', str(params_file)]
        for source, target in (remappings or {}).items():
            command += ['-r', f'{source}:={target}']
        command += list(ros_args)
        return self.start_process(name, command, env)

    def start_python(self, name: str, script: Path, *args: str) -> NodeProcess:
        """Start a Python script of ours (e.g. tests/tools/relay.py) with this interpreter."""
        return self.start_process(name, [sys.executable, str(script), *args])

    def assert_alive(self) -> None:
        """Raise AssertionError naming every started process that has exited."""
        dead = [f'{p.name} (exit {p.popen.returncode})' for p in self.processes if not p.alive()]
        assert not dead, f'node process(es) died: {", ".join(dead)}'

    # -- topics and services -------------------------------------------------------------------
    def collect(self, topic: str, msg_type, qos=None) -> Collector:
        """Subscribe the probe to `topic` and return the Collector filling with its messages."""
        collector = Collector(topic)
        self.node.create_subscription(
            msg_type, topic, collector._on_message, qos or reliable_qos(100)
        )
        return collector

    def publisher(self, topic: str, msg_type, qos=None):
        """Create a probe publisher."""
        return self.node.create_publisher(msg_type, topic, qos or reliable_qos(100))

    def wait_for_subscribers(self, publisher, count: int = 1, timeout: float = 20.0) -> None:
        """Wait until `count` subscriptions are matched to a probe publisher."""
        wait_until(
            lambda: publisher.get_subscription_count() >= count,
            timeout,
            f'{count} subscriber(s) on {publisher.topic_name}',
        )

    def wait_for_publishers(self, topic: str, count: int = 1, timeout: float = 20.0) -> None:
        """Wait until `count` publishers of `topic` are discovered."""
        wait_until(
            lambda: self.node.count_publishers(topic) >= count,
            timeout,
            f'{count} publisher(s) on {topic}',
        )

    def wait_for_service(self, client, timeout: float = 20.0) -> None:
        """Wait until a probe service client sees its server."""
        wait_until(client.service_is_ready, timeout, f'service {client.srv_name}')

    def call(self, srv_type, name: str, request, timeout: float = 20.0):
        """Call a service from the probe and return the response (waits for the server first)."""
        client = self.node.create_client(srv_type, name)
        self.wait_for_service(client, timeout)
        future = client.call_async(request)
        wait_until(future.done, timeout, f'response from {name}')
        self.node.destroy_client(client)
        return future.result()

    # -- lifecycle and parameters (what `ros2 lifecycle` / `ros2 param` do) -------------------
    def lifecycle_state(self, node: str, timeout: float = 20.0) -> str:
        """Return the label of a lifecycle node's current state ('active', 'inactive', ...)."""
        from lifecycle_msgs.srv import GetState

        return self.call(
            GetState, f'/{node}/get_state', GetState.Request(), timeout
        ).current_state.label

    def change_state(self, node: str, transition: str, timeout: float = 20.0) -> bool:
        """Trigger a lifecycle transition by label (e.g. 'deactivate'); return True on success."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        ids = {
            'configure': Transition.TRANSITION_CONFIGURE,
            'cleanup': Transition.TRANSITION_CLEANUP,
            'activate': Transition.TRANSITION_ACTIVATE,
            'deactivate': Transition.TRANSITION_DEACTIVATE,
        }
        request = ChangeState.Request(transition=Transition(id=ids[transition]))
        return self.call(ChangeState, f'/{node}/change_state', request, timeout).success

    def set_parameters(self, node: str, timeout: float = 20.0, **values) -> list:
        """Set parameters of a node; return its SetParametersResult for each, in order."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request(
            parameters=[
                Parameter(name, value=value).to_parameter_msg() for name, value in values.items()
            ]
        )
        return self.call(SetParameters, f'/{node}/set_parameters', request, timeout).results

    def describe_parameters(self, node: str, *names: str, timeout: float = 20.0) -> dict:
        """Return {name: ParameterDescriptor} for the named parameters of a node."""
        from rcl_interfaces.srv import DescribeParameters

        request = DescribeParameters.Request(names=list(names))
        descriptors = self.call(
            DescribeParameters, f'/{node}/describe_parameters', request, timeout
        ).descriptors
        return {d.name: d for d in descriptors}

    # -- teardown ---------------------------------------------------------------------------------
    def _spin(self) -> None:
        while self.context.ok():
            try:
                self._executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - context shut down between the check and the spin
                if self.context.ok():
                    raise

    def logs(self) -> str:
        """All node logs, each under a heading (what the fixture prints when a test fails)."""
        parts = []
        for process in self.processes:
            parts.append(f'===== {process.name}: {" ".join(process.command)}\n{process.log()}')
        return '\n'.join(parts)

    def shutdown(self) -> None:
        """Stop every node (SIGINT, then SIGKILL) and the probe."""
        for process in reversed(self.processes):
            process.stop()
        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self._spin_thread.join(5)


class NodeDiagnostics:
    """The latest /diagnostics key/values of one node (only the newest status is kept).

    A node's counters are the test's evidence that it has taken a message: messages on one topic
    from one publisher reach it in order, but separate topics race each other inside its
    executor, so a test that needs one topic's message handled before another's waits here.
    """

    def __init__(self, graph: Graph, node_name: str):
        from diagnostic_msgs.msg import DiagnosticArray

        self.node_name = node_name.lstrip('/')
        self.values: Dict[str, str] = {}
        self.received = 0
        self._cond = threading.Condition()
        graph.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_array, 10)

    def _on_array(self, array) -> None:
        for status in array.status:
            if status.name.lstrip('/') == self.node_name:
                with self._cond:
                    self.values = {kv.key: kv.value for kv in status.values}
                    self.received += 1
                    self._cond.notify_all()

    def number(self, key: str) -> int:
        """Return the latest integer value of `key` (0 while not reported)."""
        with self._cond:
            return int(self.values.get(key, 0))

    def drops(self) -> int:
        """Return the sum of the node's dropped_<reason> counters."""
        with self._cond:
            return sum(int(v) for k, v in self.values.items() if k.startswith('dropped_'))

    def wait_for(
        self, predicate: Callable[[Dict[str, str]], bool], timeout: float, what: str
    ) -> Dict[str, str]:
        """Block until the latest values satisfy `predicate`; return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.values):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f'{self.node_name} /diagnostics: timed out after {timeout:.1f} s waiting '
                        f'for {what}; latest values {self.values}'
                    )
                self._cond.wait(remaining)
            return dict(self.values)

    def wait_count(self, key: str, at_least: int, timeout: float = 20.0) -> Dict[str, str]:
        """Block until the counter `key` reaches `at_least`."""
        return self.wait_for(
            lambda values: int(values.get(key, 0)) >= at_least, timeout, f'{key} >= {at_least}'
        )


# -- pytest glue --------------------------------------------------------------------------------
def domain_id() -> int:
    """Return this run's DDS domain: ROS_DOMAIN_ID when set (make test picks one), else by PID."""
    return int(os.environ.get('ROS_DOMAIN_ID') or (os.getpid() % 100 + 1))


def assert_config_section_declared(
    graph: Graph,
    config: Path,
    node_name: str,
    package: str,
    executable: str,
    parameters: Optional[dict] = None,
    env: Optional[Dict[str, str]] = None,
) -> None:
    """Start a node with the params file `config`; assert it declares its section's values.

    rclpy silently ignores unknown names in a parameter file, so a typo would otherwise go
    unnoticed. `parameters` / `env` are what the node needs besides the file (a device).
    """
    from rcl_interfaces.msg import ParameterType
    from rcl_interfaces.srv import GetParameters

    settings = yaml.safe_load(Path(config).read_text())[node_name]['ros__parameters']
    node = graph.start_node(
        package,
        executable,
        name=node_name,
        parameters=parameters,
        env=env,
        ros_args=['--params-file', str(config)],
    )
    response = graph.call(
        GetParameters,
        f'/{node_name}/get_parameters',
        GetParameters.Request(names=list(settings)),
        timeout=60,
    )
    assert node.alive(), node.log()
    fields = {
        ParameterType.PARAMETER_BOOL: 'bool_value',
        ParameterType.PARAMETER_INTEGER: 'integer_value',
        ParameterType.PARAMETER_DOUBLE: 'double_value',
        ParameterType.PARAMETER_STRING: 'string_value',
    }
    for name, value in zip(settings, response.values, strict=True):
        assert value.type != ParameterType.PARAMETER_NOT_SET, (
            f'{node_name} declares no parameter {name!r}'
        )
        got = getattr(value, fields[value.type]) if value.type in fields else None
        # YAML writes 0.0 as a float and 1 as an int: compare like for like
        wanted = float(settings[name]) if isinstance(got, float) else settings[name]
        assert got == wanted, f'{node_name}.{name}: {got!r} != {settings[name]!r}'


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the test item (the fixture prints logs on failure)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f'rep_{report.when}', report)


@pytest.fixture
def graph(request, tmp_path):
    """Yield a Graph on this run's domain; node logs are printed when the test fails."""
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    the_graph = Graph(domain_id(), tmp_path / 'graph')
    yield the_graph
    the_graph.shutdown()
    failed = any(
        getattr(request.node, f'rep_{when}', None) is not None
        and getattr(request.node, f'rep_{when}').failed
        for when in ('setup', 'call')
    )
    if failed:
        sys.stderr.write('\n' + the_graph.logs() + '\n')


# -- lifecycle and parameter checks shared by the node tests -----------------------------------
#: How long a node that should stay silent is watched (an absence needs a window).
SILENCE_WINDOW_S = 2.0


def lifecycle_label(diagnostics: Collector, node: str) -> str:
    """Return the newest `lifecycle_state` a node reported on /diagnostics ('' if none yet)."""
    for message in reversed(diagnostics.snapshot()):
        for status in message.status:
            if status.name.endswith(node):
                values = {kv.key: kv.value for kv in status.values}
                if 'lifecycle_state' in values:
                    return values['lifecycle_state']
    return ''


def deactivate(graph: Graph, node: str, diagnostics: Collector, publisher) -> None:
    """Deactivate `node`, check its state everywhere and that it stopped listening."""
    assert graph.lifecycle_state(node) == 'active'
    assert graph.change_state(node, 'deactivate')
    assert graph.lifecycle_state(node) == 'inactive'
    wait_until(
        lambda: lifecycle_label(diagnostics, node) == 'inactive', 10, 'inactive on /diagnostics'
    )
    wait_until(lambda: publisher.get_subscription_count() == 0, 10, f'{node} to stop listening')


def activate(graph: Graph, node: str, diagnostics: Collector, publisher) -> None:
    """Activate `node` again and wait until it listens."""
    assert graph.change_state(node, 'activate')
    assert graph.lifecycle_state(node) == 'active'
    wait_until(
        lambda: lifecycle_label(diagnostics, node) == 'active', 10, 'active on /diagnostics'
    )
    graph.wait_for_subscribers(publisher)


def assert_refused(results: list, *fragments: str) -> None:
    """Check that a SetParameters answer is a refusal whose reason names each fragment."""
    (result,) = results
    assert not result.successful
    for fragment in fragments:
        assert fragment in result.reason, result.reason
