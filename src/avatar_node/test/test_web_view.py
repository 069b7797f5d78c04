"""web_view over real DDS, and its page in headless Chromium against the real graph.

dialogue_node, avatar_node and web_view run as their own processes; the page is opened in
Debian's chromium through selenium. It must show an avatar frame within 2 s, and a Korean
message typed into its box must come back with dialogue_node's reply (the same text as on
agechat/reply) and the reply as the caption. A screenshot is saved (AGECHAT_WEB_SCREENSHOT=path
to keep it, e.g. docs/web_view.png).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from agechat_msgs.msg import AgeEstimate, DialogueReply, FaceEmotion, SpeechState, Utterance
from sensor_msgs.msg import Image

from agechat_ros import qos
from agechat_ros.testing import NodeDiagnostics, assert_refused, wait_until

CHROMIUM = Path('/usr/bin/chromium')
CHROMEDRIVER = Path('/usr/bin/chromedriver')
URL_LINE = re.compile(r'web view: open (http://\S+) in a browser')
HANGUL = re.compile('[\uac00-\ud7a3]')
TYPED = '오늘 날씨가 정말 좋네요'


def happy_face() -> FaceEmotion:
    msg = FaceEmotion(face_found=True, face_count=1, emotion=3, emotion_label='happy')
    msg.confidence = 0.8
    msg.probabilities = [0.02, 0.01, 0.02, 0.8, 0.05, 0.05, 0.05]
    return msg


def live_speech_publisher(graph):
    """(LiveSpeech, a publisher on the REP-155 speech topic), or None without hri_msgs."""
    try:
        from hri_msgs.msg import LiveSpeech
    except ImportError:
        return None
    publisher = graph.publisher('/humans/voices/anonymous_speaker/speech', LiveSpeech, qos.EVENTS)
    graph.wait_for_subscribers(publisher, timeout=30)
    return LiveSpeech, publisher


def page_url(process, timeout: float = 60.0) -> str:
    """Wait for web_view's 'open <url>' log line and return the URL."""
    found = []

    def logged() -> bool:
        assert process.alive(), process.log()
        match = URL_LINE.search(process.log())
        if match:
            found.append(match.group(1))
        return bool(found)

    wait_until(logged, timeout, 'the web view URL in its log')
    return found[0]


def fetch(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except OSError:
        return 0


def make_browser():
    """Headless Chromium through chromedriver, or skip saying what is missing."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            f'needs {CHROMIUM} and {CHROMEDRIVER} (sudo apt install chromium chromium-driver)'
        )
    webdriver = pytest.importorskip('selenium.webdriver', reason='selenium is not installed')
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        '--headless=new',
        '--no-sandbox',
        '--disable-dev-shm-usage',
        '--disable-gpu',
        '--window-size=1280,760',
        '--lang=ko-KR',
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    return driver


def test_page_shows_the_avatars_and_answers_typed_korean(graph, tmp_path):
    driver = make_browser()  # first: skips before any node starts when Chromium is absent
    try:
        graph.start_node('dialogue_node', 'dialogue_node')
        graph.start_node(
            'avatar_node', 'avatar_node', parameters={'width': 640, 'height': 360, 'fps': 10.0}
        )
        web = graph.start_node('avatar_node', 'web_view', parameters={'port': 0, 'max_fps': 10.0})
        replies = graph.collect('/agechat/reply', DialogueReply)
        url = page_url(web)
        assert url.startswith('http://127.0.0.1:')
        # the graph is up: the web view holds an avatar frame and the chat service answers
        wait_until(lambda: fetch(url + 'frame.jpg') == 200, 120, 'a first avatar frame')
        from agechat_msgs.srv import Chat

        client = graph.node.create_client(Chat, '/agechat/chat')
        graph.wait_for_service(client, timeout=120)
        graph.node.destroy_client(client)

        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import Select, WebDriverWait

        driver.get(url)
        loaded = time.monotonic()
        assert 'agechat' in driver.title
        frames = WebDriverWait(driver, 2.0, poll_frequency=0.05).until(
            lambda d: d.execute_script(
                "const img = document.getElementById('avatar');"
                'return img.naturalWidth > 0 && Number(img.dataset.frames) > 0 '
                '? [img.naturalWidth, img.naturalHeight, Number(img.dataset.frames)] : null;'
            )
        )
        first_frame_s = time.monotonic() - loaded
        assert frames[:2] == [640, 360], frames
        state = driver.find_element(By.ID, 'connection').get_attribute('data-state')
        assert state == 'open'
        # frames keep coming (live, not one picture)
        WebDriverWait(driver, 10).until(
            lambda d: int(d.find_element(By.ID, 'avatar').get_attribute('data-frames')) >= 3
        )

        # what the graph hears and sees shows up: partial, heard text, age group, emotion
        face = graph.publisher('/agechat/face_emotion', FaceEmotion, qos.EVENTS)
        age = graph.publisher('/agechat/age', AgeEstimate, qos.EVENTS)
        utterance = graph.publisher('/agechat/utterance', Utterance, qos.EVENTS)
        # subscribers: web_view and dialogue_node (and avatar_node for the face)
        for publisher, count in ((face, 3), (age, 2), (utterance, 2)):
            graph.wait_for_subscribers(publisher, count=count, timeout=30)
        happy = happy_face()
        graph.node.create_timer(0.2, lambda: face.publish(happy))  # a camera's steady stream
        text_of = lambda d, element: d.find_element(By.ID, element).text  # noqa: E731
        partial = live_speech_publisher(graph)
        if partial is not None:
            partial[1].publish(partial[0](incremental='배고'))
            WebDriverWait(driver, 10).until(lambda d: text_of(d, 'partial') == '배고')
        age.publish(
            AgeEstimate(utterance_id='web-1', group=2, group_label='senior', confidence=0.87)
        )
        utterance.publish(Utterance(utterance_id='web-1', text='배고파요', confidence=0.9))
        WebDriverWait(driver, 10).until(lambda d: text_of(d, 'heard') == '배고파요')
        WebDriverWait(driver, 10).until(lambda d: text_of(d, 'age').startswith('어르신'))
        WebDriverWait(driver, 10).until(lambda d: text_of(d, 'emotion').startswith('기쁨'))
        assert driver.find_element(By.ID, 'age').get_attribute('data-group') == 'senior'
        # its spoken reply becomes the caption
        (spoken,) = [r for r in replies.wait_for(1, timeout=30) if r.utterance_id == 'web-1']
        WebDriverWait(driver, 30).until(lambda d: text_of(d, 'caption') == spoken.reply_text)

        # typed chat, answered for the estimated age group and the seen emotion
        choice = Select(driver.find_element(By.ID, 'age-choice')).first_selected_option
        assert choice.get_attribute('value') == ''  # the default: the estimated group
        box = driver.find_element(By.ID, 'chat-input')
        box.send_keys(TYPED)
        box.send_keys(Keys.ENTER)
        reply_item = WebDriverWait(driver, 60, poll_frequency=0.1).until(
            lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, '#chat-log li.chat-reply')), None)
        )
        errors = driver.find_elements(By.CSS_SELECTOR, '#chat-log li.chat-error')
        assert not errors, [e.text for e in errors]
        shown = driver.execute_script('return arguments[0].firstChild.textContent;', reply_item)
        assert HANGUL.search(shown), shown
        # it is dialogue_node's answer: the same text went out on agechat/reply
        (reply,) = [r for r in replies.wait_for(2, timeout=30) if r.user_text.strip() == TYPED]
        assert reply.reply_text == shown, (reply.reply_text, shown)
        assert (reply.age_group, reply.emotion) == ('senior', 'happy')
        # and the caption (agechat/reply through web_view) shows it once the agent speaks it
        WebDriverWait(driver, 60).until(lambda d: text_of(d, 'caption') == reply.reply_text)
        you = driver.find_element(By.CSS_SELECTOR, '#chat-log li.chat-you').text
        assert you == TYPED
        # the agent speaks it: the badge follows agechat/speech_state
        WebDriverWait(driver, 20).until(
            lambda d: d.find_element(By.ID, 'speaking').get_attribute('data-speaking') == 'true'
        )
        screenshot = tmp_path / 'web_view.png'
        assert driver.save_screenshot(str(screenshot))
        keep = os.environ.get('AGECHAT_WEB_SCREENSHOT')
        if keep:
            shutil.copyfile(screenshot, keep)
        print(f'first frame {first_frame_s * 1000:.0f} ms after load; screenshot {screenshot}')
        graph.assert_alive()
    finally:
        driver.quit()


def test_bad_input_is_dropped_and_counted_and_parameters_are_checked(graph):
    web = graph.start_node('avatar_node', 'web_view', parameters={'port': 0})
    url = page_url(web)
    diagnostics = NodeDiagnostics(graph, 'web_view')
    image = graph.publisher('/agechat/avatar/image', Image, qos.SENSOR_DATA)
    age = graph.publisher('/agechat/age', AgeEstimate, qos.EVENTS)
    face = graph.publisher('/agechat/face_emotion', FaceEmotion, qos.EVENTS)
    reply = graph.publisher('/agechat/reply', DialogueReply, qos.EVENTS)
    utterance = graph.publisher('/agechat/utterance', Utterance, qos.EVENTS)
    for publisher in (image, age, face, reply, utterance):
        graph.wait_for_subscribers(publisher, timeout=30)
    bad_image = Image(height=2, width=2, encoding='yuv422', step=4, data=bytes(8))

    def bad_image_counted() -> bool:
        image.publish(bad_image)  # best effort: published again until one is taken
        return diagnostics.number('dropped_bad_image') >= 1

    age.publish(AgeEstimate(utterance_id='u1', group=7, group_label='teen', confidence=0.5))
    face.publish(FaceEmotion(face_found=True, emotion_label='bored', confidence=0.5))
    reply.publish(DialogueReply(utterance_id='u1', reply_text='   '))
    utterance.publish(Utterance(utterance_id='', text='안녕'))
    wait_until(bad_image_counted, 30, 'the bad image dropped and counted', poll_s=0.2)
    diagnostics.wait_for(
        lambda v: all(
            int(v.get(f'dropped_{reason}', 0)) >= 1
            for reason in (
                'bad_image',
                'bad_age',
                'bad_face_emotion',
                'bad_reply',
                'bad_utterance',
            )
        ),
        30,
        'every bad message dropped and counted',
    )
    # good ones still go through
    age.publish(AgeEstimate(utterance_id='u2', group=2, group_label='senior', confidence=0.9))
    wait_until(lambda: b'"senior"' in urllib.request.urlopen(url + 'api/state').read(), 10, 'age')
    assert 'dropped input (bad_age)' in web.log()
    graph.assert_alive()
    # read-only at run time, range-checked
    assert_refused(graph.set_parameters('web_view', port=9000), 'read-only')
    assert_refused(graph.set_parameters('web_view', jpeg_quality=5), 'jpeg_quality')
    assert graph.set_parameters('web_view', max_fps=2.0)[0].successful
    # lifecycle: inactive = no page; active again = the same URL (port 0's pick is kept)
    assert graph.change_state('web_view', 'deactivate')
    assert graph.lifecycle_state('web_view') == 'inactive' and fetch(url) == 0
    assert graph.change_state('web_view', 'activate')
    assert fetch(url) == 200 and web.log().count(f'open {url} in a browser') == 2


def test_an_interrupted_reply_is_shown_as_such(graph):
    web = graph.start_node('avatar_node', 'web_view', parameters={'port': 0})
    url = page_url(web)
    speech = graph.publisher('/agechat/speech_state', SpeechState, qos.LATCHED)
    graph.wait_for_subscribers(speech, timeout=30)

    def speaking_state() -> dict:
        state = json.loads(urllib.request.urlopen(url + 'api/state').read())['state']
        return state.get('speaking', {})

    speech.publish(SpeechState(speaking=True, utterance_id='r1'))
    wait_until(lambda: speaking_state().get('speaking') is True, 10, 'speaking')
    assert speaking_state()['interrupted'] is False
    speech.publish(SpeechState(speaking=False, utterance_id='r1', interrupted=True))
    wait_until(lambda: speaking_state().get('interrupted') is True, 10, 'interrupted')
    assert speaking_state()['speaking'] is False and speaking_state()['utterance_id'] == 'r1'
    speech.publish(SpeechState(speaking=True, utterance_id='r2'))  # the next reply
    wait_until(lambda: speaking_state().get('utterance_id') == 'r2', 10, 'the next reply')
    assert speaking_state()['interrupted'] is False
    speech.publish(SpeechState(speaking=False, utterance_id='r2'))  # played to its end
    wait_until(lambda: speaking_state().get('speaking') is False, 10, 'the end')
    assert speaking_state()['interrupted'] is False
    graph.assert_alive()


@pytest.mark.parametrize(
    'parameters, message',
    [
        ({'host': 'my laptop'}, "host = 'my laptop' must be 'localhost' or an IP address"),
        ({'port': 70000}, 'port = 70000 must be <= 65535'),
    ],
)
def test_invalid_parameters_stop_the_node_with_one_line(graph, parameters, message):
    node = graph.start_node('avatar_node', 'web_view', parameters=parameters)
    wait_until(lambda: not node.alive(), 60, 'web_view to exit')
    assert node.popen.returncode == 2
    assert message in node.log(), node.log()


def test_a_busy_port_stops_the_node_with_one_line(graph):
    import socket

    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = busy.getsockname()[1]
        node = graph.start_node('avatar_node', 'web_view', parameters={'port': port})
        wait_until(lambda: not node.alive(), 60, 'web_view to exit')
    assert node.popen.returncode == 2
    fatal = [line for line in node.log().splitlines() if line.startswith('[FATAL]')]
    assert len(fatal) == 1 and f'127.0.0.1:{port}' in fatal[0] and 'another port' in fatal[0]
    assert 'Traceback' not in node.log()


def test_the_launch_file_starts_web_view_only_when_asked():
    launch_xml = pytest.importorskip(
        'agechat_tools.launch_xml', reason='needs tools/ on PYTHONPATH'
    )
    import yaml

    repo = Path(__file__).resolve().parents[3]
    launch_file = launch_xml.LaunchFile(repo / 'launch' / 'agechat.launch.xml')
    _, nodes = launch_file.resolve({})
    assert 'web_view' not in [n.name for n in nodes]
    _, nodes = launch_file.resolve(
        launch_xml.parse_overrides(['start_web_view:=true', 'web_view_port:=0'])
    )
    (web,) = [n for n in nodes if n.name == 'web_view']
    assert (web.package, web.executable, web.respawn) == ('avatar_node', 'web_view', False)
    assert ('port', '0') in web.params
    config = yaml.safe_load((repo / 'config' / 'agechat.yaml').read_text())
    assert config['web_view']['ros__parameters']['host'] == '127.0.0.1'
