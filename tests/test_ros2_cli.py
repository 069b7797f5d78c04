"""The graph as a robot user drives it: the real `ros2` command line against `ros2 launch`.

Runs only where a `ros2` executable is on PATH: a robot, or our CI, where `.ci/run` builds the
upstream CLI from ../shared/tools/ros2cli. One `ros2 launch launch/agechat.launch.xml` serves the
whole module; the last test stops it with one SIGINT to its process group, as Ctrl-C in a
terminal does. Every `ros2` command and its output is logged to <tmp>/ros2_cli*/cli.log.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set

import pytest
from lifecycle_msgs.srv import GetState

from agechat_msgs.msg import DialogueReply
from agechat_ros.testing import Graph, NodeProcess, domain_id, reliable_qos, wait_until

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / 'launch' / 'agechat.launch.xml'
INTERFACES = REPO / 'src' / 'agechat_msgs'
ROS2 = shutil.which('ros2')

if ROS2 is None:
    pytest.skip(
        'no `ros2` executable on PATH: these tests drive the real ROS 2 command line. CI builds '
        'it (.ci/run, from ../shared/tools/ros2cli); here: `. scripts/env.sh && bash '
        '../shared/tools/ros2cli/build.sh .cache/ros2cli && . .cache/ros2cli/env.sh`',
        allow_module_level=True,
    )

NODES = ('/age_node', '/emotion_node', '/dialogue_node', '/avatar_node')

# README "The graph": every topic of the launched graph (launch's remappings applied) and its type.
DOCUMENTED_TOPICS = {
    '/audio/audio': 'audio_common_msgs/msg/AudioData',
    '/audio/audio_info': 'audio_common_msgs/msg/AudioInfo',
    '/camera/image_raw': 'sensor_msgs/msg/Image',
    '/agechat/utterance': 'agechat_msgs/msg/Utterance',
    '/agechat/age': 'agechat_msgs/msg/AgeEstimate',
    '/agechat/face_emotion': 'agechat_msgs/msg/FaceEmotion',
    '/agechat/reply': 'agechat_msgs/msg/DialogueReply',
    '/agechat/tts/audio': 'audio_common_msgs/msg/AudioData',
    '/agechat/tts/audio_info': 'audio_common_msgs/msg/AudioInfo',
    '/agechat/speech_state': 'agechat_msgs/msg/SpeechState',
    '/agechat/avatar/image': 'sensor_msgs/msg/Image',
    '/agechat/avatar/state': 'agechat_msgs/msg/AvatarState',
    '/diagnostics': 'diagnostic_msgs/msg/DiagnosticArray',
    '/humans/voices/tracked': 'hri_msgs/msg/IdsList',
    '/humans/voices/anonymous_speaker/speech': 'hri_msgs/msg/LiveSpeech',
    '/humans/voices/anonymous_speaker/is_speaking': 'std_msgs/msg/Bool',
    '/humans/voices/anonymous_speaker/softbiometrics': 'hri_msgs/msg/SoftBiometrics',
    '/humans/faces/tracked': 'hri_msgs/msg/IdsList',
}
CHAT_SERVICE = ('/agechat/chat', 'agechat_msgs/srv/Chat')

# Bounds: model loading takes 10-30 s on a loaded 2-core machine; CLI calls about 1-5 s each.
STARTUP_TIMEOUT_S = 120.0
DISCOVERY_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 60.0
SHUTDOWN_LIMIT_S = 5.0

INTERFACE_FILES = sorted((INTERFACES / 'msg').glob('*.msg')) + sorted(
    (INTERFACES / 'srv').glob('*.srv')
)


@dataclass
class CliResult:
    """One finished `ros2` command: its arguments, exit code and output (stdout + stderr)."""

    args: List[str]
    returncode: int
    output: str
    seconds: float = 0.0

    @property
    def lines(self) -> List[str]:
        """The output's non-empty lines, stripped."""
        return [line.strip() for line in self.output.splitlines() if line.strip()]

    def __str__(self) -> str:
        return (
            f'$ ros2 {" ".join(self.args)}  (exit {self.returncode}, {self.seconds:.1f} s)\n'
            f'{self.output}'
        )


class Ros2Cli:
    """Runs `ros2 ...` on the test's DDS domain and keeps a transcript."""

    def __init__(self, env: Dict[str, str], transcript: Path):
        self.env = env
        self.transcript = transcript

    def __call__(self, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> CliResult:
        """Run one command; a command that outlives `timeout` fails the test with its output."""
        started = time.monotonic()
        try:
            done = subprocess.run(
                [ROS2, *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
            )
            result = CliResult(list(args), done.returncode, done.stdout)
        except subprocess.TimeoutExpired as expired:
            output = expired.output or b''
            text = output.decode(errors='replace') if isinstance(output, bytes) else output
            result = CliResult(list(args), -1, text + f'\n[timed out after {timeout:.0f} s]')
        result.seconds = time.monotonic() - started
        with open(self.transcript, 'a', encoding='utf-8') as log:
            log.write(f'{result}\n')
        if result.returncode == -1:
            pytest.fail(f'`ros2 {" ".join(args)}` did not finish:\n{result}')
        return result

    def until(
        self, predicate: Callable[[CliResult], bool], *args: str, timeout: float, what: str
    ) -> CliResult:
        """Repeat a command until its result satisfies `predicate` (discovery takes a while)."""
        results: List[CliResult] = []

        def satisfied() -> bool:
            results.append(self(*args))
            return predicate(results[-1])

        try:
            wait_until(satisfied, timeout, what, poll_s=0.2)
        except TimeoutError as error:
            pytest.fail(f'{error}; last try:\n{results[-1]}')
        return results[-1]


@dataclass
class Launched:
    """The running `ros2 launch` of agechat.launch.xml, the probe graph and the CLI."""

    graph: Graph
    cli: Ros2Cli
    launch: NodeProcess
    managed: Set[str] = field(default_factory=set)

    def log(self) -> str:
        """Everything `ros2 launch` and its nodes printed so far."""
        return self.launch.log()

    def chat(self, text: str, age_group: str) -> dict:
        """`ros2 service call` the chat service; return the response's main fields."""
        request = "{text: '%s', age_group: '%s'}" % (text, age_group)
        result = self.cli('service', 'call', *CHAT_SERVICE, request)
        assert result.returncode == 0 and 'response:' in result.output, str(result)
        return parse_chat_response(result)

    def param(self, node: str, name: str) -> str:
        """`ros2 param get`: the printed value (e.g. 'Integer value is: 40' gives '40')."""
        result = self.cli('param', 'get', node, name, '--timeout', '10')
        match = re.search(r'value is: (.*)$', result.output, re.MULTILINE)
        assert result.returncode == 0 and match, str(result)
        return match.group(1).strip()

    def param_set(self, node: str, name: str, value: str) -> CliResult:
        """`ros2 param set` (its answer says whether the node accepted the value)."""
        return self.cli('param', 'set', node, name, value, '--timeout', '10')

    def lifecycle_state(self, node: str) -> str:
        """`ros2 lifecycle get`: the state label (active, inactive, ...)."""
        result = self.cli('lifecycle', 'get', node)
        match = re.fullmatch(r'(\w+) \[\d+\]', result.output.strip())
        assert result.returncode == 0 and match, f'{node} has no lifecycle state:\n{result}'
        return match.group(1)

    def lifecycle_set(self, node: str, transition: str) -> None:
        """`ros2 lifecycle set`; fail unless the transition succeeded."""
        result = self.cli('lifecycle', 'set', node, transition)
        assert 'Transitioning successful' in result.output, str(result)


def _response_field(output: str, name: str) -> str:
    """Return the repr of one field in `ros2 service call`'s printed response."""
    match = re.search(
        rf"\b{name}=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|True|False|-?\d+)", output
    )
    assert match, f'no {name}= in the response:\n{output}'
    return match.group(1)


def parse_chat_response(result: CliResult) -> dict:
    """Return the chat response's success, error, reply text, utterance id and token counts."""
    response = result.output.split('response:', 1)[1]
    fields = {
        name: ast.literal_eval(_response_field(response, name))
        for name in ('success', 'error', 'utterance_id', 'user_text', 'reply_text', 'new_tokens')
    }
    fields['hit_token_cap'] = _response_field(response, 'hit_token_cap') == 'True'
    fields['output'] = str(result)
    return fields


@contextlib.contextmanager
def sigint_not_ignored():
    """Start children with SIGINT at its default, as a terminal does.

    A pytest started in the background of a non-interactive shell inherits SIGINT ignored, and
    so would `ros2 launch`: the Ctrl-C test would then test nothing. Caught signals are reset to
    the default in an exec'ed child; ignored ones stay ignored.
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _probe_sees_nodes(graph: Graph) -> bool:
    names = {
        (namespace.rstrip('/') + '/' + name)
        for name, namespace in graph.node.get_node_names_and_namespaces()
    }
    return set(NODES) <= names


def _probe_services(graph: Graph) -> Set[str]:
    return {name for name, _types in graph.node.get_service_names_and_types()}


def _wait_until_active(graph: Graph, node: str, timeout: float) -> None:
    """Ask `node`'s get_state service (from the probe) until it reports active."""
    client = graph.node.create_client(GetState, f'{node}/get_state')
    try:
        graph.wait_for_service(client, timeout)

        def active() -> bool:
            future = client.call_async(GetState.Request())
            wait_until(future.done, 10.0, f'{node}/get_state response')
            return future.result().current_state.label == 'active'

        wait_until(active, timeout, f'{node} to become active', poll_s=0.2)
    finally:
        graph.node.destroy_client(client)


@pytest.fixture(scope='module')
def cli(tmp_path_factory) -> Ros2Cli:
    """Run the `ros2` CLI on this run's isolated domain, discovery limited to this host."""
    workdir = tmp_path_factory.mktemp('ros2_cli')
    env = dict(os.environ)
    env.update(
        {
            'ROS_DOMAIN_ID': str(domain_id()),
            'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
            'RCUTILS_COLORIZED_OUTPUT': '0',
            'PYTHONUNBUFFERED': '1',
        }
    )
    return Ros2Cli(env, workdir / 'cli.log')


@pytest.fixture(scope='module')
def launched(cli, tmp_path_factory):
    """`ros2 launch launch/agechat.launch.xml` in its own session, once for the module.

    Ready when the probe sees the four nodes and the chat service and every node that offers
    `get_state` (a lifecycle node) reports active. The CLI's verbs use the `ros2` daemon of this
    domain (much faster than --no-daemon's discovery per command); the fixture stops the daemon
    afterwards unless it was already running before.
    """
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    daemon_was_running = 'is running' in cli('daemon', 'status').output
    graph = Graph(domain_id(), cli.transcript.parent / 'graph')
    started = time.monotonic()
    with sigint_not_ignored():
        launch = graph.start_process('ros2_launch', [ROS2, 'launch', str(LAUNCH_FILE)], cli.env)
    launched = Launched(graph, cli, launch)
    try:
        wait_until(lambda: _probe_sees_nodes(graph), STARTUP_TIMEOUT_S, f'the nodes {NODES}')
        wait_until(
            lambda: CHAT_SERVICE[0] in _probe_services(graph),
            STARTUP_TIMEOUT_S,
            'the chat service',
        )
        # A lifecycle node's services come with the node; give discovery a bounded while.
        try:
            wait_until(
                lambda: all(f'{n}/get_state' in _probe_services(graph) for n in NODES),
                DISCOVERY_TIMEOUT_S / 2,
                'get_state of every node',
            )
        except TimeoutError:
            pass  # test_lifecycle_* name the unmanaged nodes
        launched.managed = {n for n in NODES if f'{n}/get_state' in _probe_services(graph)}
        for node in sorted(launched.managed):
            _wait_until_active(graph, node, STARTUP_TIMEOUT_S)
        # The daemon that the verbs below share must have discovered them too.
        cli.until(
            lambda r: set(NODES) <= set(r.lines),
            'node',
            'list',
            timeout=DISCOVERY_TIMEOUT_S,
            what='the ros2 daemon to discover the nodes',
        )
        if launched.managed:
            cli.until(
                lambda r: launched.managed <= set(r.lines),
                'lifecycle',
                'nodes',
                timeout=DISCOVERY_TIMEOUT_S,
                what='the ros2 daemon to discover the lifecycle nodes',
            )
        print(f'\n[ros2 cli] graph ready {time.monotonic() - started:.1f} s after ros2 launch')
        yield launched
    except TimeoutError as error:
        pytest.fail(f'{error}\n===== ros2 launch output\n{launch.log()}')
    finally:
        graph.shutdown()
        if not daemon_was_running:
            cli('daemon', 'stop')


# -- the interfaces (no graph needed) ------------------------------------------------------------
def _declarations(text: str) -> List[str]:
    """Return the non-comment lines of an interface definition, whitespace collapsed."""
    lines = (' '.join(line.split('#', 1)[0].split()) for line in text.splitlines())
    return [line for line in lines if line]


@pytest.mark.parametrize('definition', INTERFACE_FILES, ids=lambda path: path.name)
def test_interface_show_prints_every_agechat_interface(cli, definition):
    kind = definition.parent.name
    result = cli('interface', 'show', f'agechat_msgs/{kind}/{definition.stem}')
    assert result.returncode == 0, str(result)
    shown = _declarations(result.output)
    for declaration in _declarations(definition.read_text()):
        assert declaration in shown, f'{declaration!r} missing from:\n{result}'


# -- the launched graph ---------------------------------------------------------------------------
def test_launch_brings_up_the_four_nodes(launched):
    result = launched.cli.until(
        lambda r: set(NODES) <= set(r.lines),
        'node',
        'list',
        timeout=DISCOVERY_TIMEOUT_S,
        what=f'`ros2 node list` to show {NODES}',
    )
    assert result.returncode == 0


def test_topic_list_shows_the_documented_topics_with_their_types(launched):
    readme = (REPO / 'README.md').read_text()
    for topic in DOCUMENTED_TOPICS:
        assert f'`{topic}`' in readme or f'`{topic[1:]}`' in readme, f'{topic} not in README'

    def listed(result: CliResult) -> Dict[str, str]:
        pairs = (re.fullmatch(r'(\S+) \[(.+)\]', line) for line in result.lines)
        return {m.group(1): m.group(2) for m in pairs if m}

    result = launched.cli.until(
        lambda r: set(DOCUMENTED_TOPICS) <= set(listed(r)),
        'topic',
        'list',
        '-t',
        timeout=DISCOVERY_TIMEOUT_S,
        what='`ros2 topic list -t` to show every documented topic',
    )
    topics = listed(result)
    wrong = {t: topics[t] for t, type_ in DOCUMENTED_TOPICS.items() if topics[t] != type_}
    assert not wrong, f'types differ from the README: {wrong}'
    services = launched.cli.until(
        lambda r: f'{CHAT_SERVICE[0]} [{CHAT_SERVICE[1]}]' in r.lines,
        'service',
        'list',
        '-t',
        timeout=DISCOVERY_TIMEOUT_S,
        what='`ros2 service list -t` to show the chat service',
    )
    assert services.returncode == 0


def test_service_call_on_the_chat_service_answers(launched):
    response = launched.chat('안녕', 'child')
    assert response['success'] is True, response['output']
    assert response['error'] == ''
    assert response['reply_text'].strip(), response['output']
    assert "age_group='child'" in response['output']


def test_param_describe_shows_description_and_integer_range(launched):
    result = launched.cli(
        'param', 'describe', '/dialogue_node', 'max_new_tokens', '--timeout', '10'
    )
    assert result.returncode == 0, str(result)
    assert 'Type: integer' in result.output, str(result)
    assert re.search(r'Description: \S', result.output), str(result)
    assert 'Min value: 1' in result.output and 'Max value: 256' in result.output, str(result)


def test_param_set_max_input_chars_takes_effect_on_the_next_reply(launched):
    text = '오늘 학교에서 친구들이랑 축구를 했는데 너무 재미있었어'
    original = launched.param('/dialogue_node', 'max_input_chars')
    before = launched.chat(text, 'child')
    assert before['user_text'] == text, before['output']
    result = launched.param_set('/dialogue_node', 'max_input_chars', '10')
    try:
        assert 'Set parameter successful' in result.output, str(result)
        assert launched.param('/dialogue_node', 'max_input_chars') == '10'
        after = launched.chat(text, 'child')
        assert after['success'] is True, after['output']
        cut = after['user_text']
        assert cut and len(cut) <= 10 and text.startswith(cut), (
            f'`param set max_input_chars 10` accepted, but the next reply read '
            f'{after["user_text"]!r}:\n{after["output"]}'
        )
    finally:
        launched.param_set('/dialogue_node', 'max_input_chars', original)
    assert launched.param('/dialogue_node', 'max_input_chars') == original


def test_param_set_out_of_range_is_refused(launched):
    original = launched.param('/dialogue_node', 'max_new_tokens')
    result = launched.param_set('/dialogue_node', 'max_new_tokens', '1000')
    value = launched.param('/dialogue_node', 'max_new_tokens')
    if value != original:
        launched.param_set('/dialogue_node', 'max_new_tokens', original)
    assert 'Setting parameter failed' in result.output, str(result)
    assert value == original


def test_param_set_of_a_start_time_parameter_is_refused_as_read_only(launched):
    original = launched.param('/dialogue_node', 'model_path')
    result = launched.param_set('/dialogue_node', 'model_path', '/tmp')
    value = launched.param('/dialogue_node', 'model_path')
    if value != original:
        launched.param_set('/dialogue_node', 'model_path', original or "''")
    assert 'Setting parameter failed' in result.output, str(result)
    assert 'read-only' in result.output, str(result)
    assert value == original


@pytest.mark.parametrize('node', NODES)
def test_lifecycle_get_and_set_round_trip(launched, node):
    assert launched.lifecycle_state(node) == 'active'
    launched.lifecycle_set(node, 'deactivate')
    try:
        assert launched.lifecycle_state(node) == 'inactive'
    finally:
        launched.lifecycle_set(node, 'activate')
    assert launched.lifecycle_state(node) == 'active'


def test_inactive_dialogue_node_refuses_chat_and_publishes_nothing(launched):
    replies = launched.graph.collect('/agechat/reply', DialogueReply, reliable_qos(100))
    first = launched.chat('안녕', 'adult')
    assert first['success'] is True, first['output']
    # The probe receives the active node's reply: the subscription is matched.
    replies.wait_for(
        1,
        timeout=20,
        predicate=lambda ms: any(m.utterance_id == first['utterance_id'] for m in ms),
    )
    replies.clear()
    launched.lifecycle_set('/dialogue_node', 'deactivate')
    try:
        assert launched.lifecycle_state('/dialogue_node') == 'inactive'
        refused = launched.chat('안녕', 'adult')
        assert refused['success'] is False, refused['output']
        assert 'inactive' in refused['error'], refused['output']
    finally:
        launched.lifecycle_set('/dialogue_node', 'activate')
    assert launched.lifecycle_state('/dialogue_node') == 'active'
    again = launched.chat('안녕', 'adult')
    assert again['success'] is True, again['output']
    # Replies arrive in publication order: had the inactive node published, it would come first.
    received = replies.wait_for(
        1,
        timeout=20,
        predicate=lambda ms: any(m.utterance_id == again['utterance_id'] for m in ms),
    )
    assert [m.utterance_id for m in received] == [again['utterance_id']]


# -- last: Ctrl-C ---------------------------------------------------------------------------------
_STARTED = re.compile(r'^\[INFO\] \[(\w+)-\d+\]: process started with pid \[(\d+)\]', re.M)
_FINISHED = re.compile(
    r'^\[INFO\] \[(\w+)-\d+\]: process has finished cleanly \[pid (\d+)\]', re.M
)
_DIED = re.compile(
    r'^\[ERROR\] \[(\w+)-\d+\]: process has died \[pid (\d+), exit code (-?\d+)', re.M
)


def _node_exits(log: str) -> Dict[str, Optional[int]]:
    """Exit code of each node process that launch reported ended, by pid."""
    exits: Dict[str, Optional[int]] = {pid: 0 for _name, pid in _FINISHED.findall(log)}
    exits.update({pid: int(code) for _name, pid, code in _DIED.findall(log)})
    return exits


def test_one_sigint_to_the_launch_process_group_stops_every_node_cleanly(launched):
    before = launched.log()
    running = {name: pid for name, pid in _STARTED.findall(before)}  # the latest pid per node
    assert sorted(f'/{name}' for name in running) == sorted(NODES), before
    running = {name: pid for name, pid in running.items() if pid not in _node_exits(before)}
    assert len(running) == len(NODES), f'a node had exited before Ctrl-C:\n{before}'

    sent = time.monotonic()
    os.killpg(launched.launch.popen.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    seen_at: Dict[str, float] = {}

    def all_exited() -> bool:
        exits = _node_exits(launched.log()[len(before) :])
        for name, pid in running.items():
            if pid in exits and name not in seen_at:
                seen_at[name] = time.monotonic() - sent
        return len(seen_at) == len(running)

    with contextlib.suppress(TimeoutError):
        wait_until(all_exited, SHUTDOWN_LIMIT_S, 'every node to exit')
    try:
        launch_code = launched.launch.popen.wait(timeout=3 * SHUTDOWN_LIMIT_S)
    except subprocess.TimeoutExpired:
        launch_code = None
    after = launched.log()[len(before) :]
    exits = _node_exits(after)
    codes = {name: exits.get(pid) for name, pid in running.items()}
    report = (
        f'exit codes {codes}, seen after {seen_at} s, ros2 launch exit {launch_code}\n'
        f'===== output after SIGINT\n{after}'
    )
    print(f'\n[ros2 cli] Ctrl-C: {report.splitlines()[0]}')
    assert codes == {name: 0 for name in running}, report
    assert all(t <= SHUTDOWN_LIMIT_S for t in seen_at.values()), report
    assert launch_code == 0, report
    for bad in ('Traceback', 'KeyboardInterrupt', 'process has died'):
        assert bad not in after, f'{bad!r} in the output after Ctrl-C\n{report}'
    whole = launched.log()
    for bad in ('Traceback', 'KeyboardInterrupt'):
        assert bad not in whole, f'{bad!r} in the output of ros2 launch:\n{whole}'
    assert not _STARTED.search(after), f'a node was respawned during shutdown\n{report}'
