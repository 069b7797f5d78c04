"""The browser view's web app without ROS: a real aiohttp server on a free port, real clients."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
from aiohttp import ClientSession, WSMsgType

from avatar_node.core.web import Settings, WebView, WebViewError, check_host, url_of


class Chat:
    """A chat callable that records requests and answers with the text it was given, reversed."""

    def __init__(self, answer: bool = True):
        self.requests = []
        self.answer = answer

    def __call__(self, text, age, emotion):
        self.requests.append((text, age, emotion))
        future = concurrent.futures.Future()
        if self.answer:
            future.set_result({'success': True, 'error': '', 'reply_text': text[::-1]})
        return future


@pytest.fixture
def view():
    chat = Chat()
    the_view = WebView(chat, Settings(max_fps=30.0, chat_timeout_s=0.5, max_chat_chars=20))
    the_view.url = the_view.start('127.0.0.1', 0)
    the_view.chat_calls = chat
    yield the_view
    the_view.stop()


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get('Content-Type'), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get('Content-Type'), error.read()


def post_json(url: str, body, **headers) -> tuple:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={'Content-Type': 'application/json', **headers}, method='POST'
    )
    status, _, payload = get_request(request)
    return status, json.loads(payload)


def get_request(request):
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get('Content-Type'), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get('Content-Type'), error.read()


def test_host_check_and_url():
    assert check_host('127.0.0.1') and check_host('::1') and check_host('0.0.0.0')
    assert check_host('localhost')
    assert not check_host('my laptop') and not check_host('') and not check_host('127.0.0.300')
    assert url_of('127.0.0.1', 8765) == 'http://127.0.0.1:8765/'
    assert url_of('0.0.0.0', 80) == 'http://127.0.0.1:80/'
    assert url_of('::1', 9000) == 'http://[::1]:9000/'


def test_serves_the_page_its_script_and_style(view):
    assert view.url.startswith('http://127.0.0.1:') and view.address[1] > 0
    status, kind, body = get(view.url)
    assert status == 200 and kind.startswith('text/html')
    page = body.decode()
    for element in ('id="avatar"', 'id="chat-input"', 'id="caption"', 'id="heard"', 'id="age"'):
        assert element in page
    status, kind, body = get(view.url + 'static/web_view.js')
    assert status == 200 and b'/api/chat' in body and b'/ws' in body
    assert get(view.url + 'static/web_view.css')[0] == 200
    assert get(view.url + 'static/../web.py')[0] == 404  # nothing outside the static folder


def test_frame_is_encoded_once_and_served_as_jpeg(view):
    assert get(view.url + 'frame.jpg')[0] == 404
    frame = np.zeros((90, 160, 3), np.uint8)
    frame[:, :80] = (0, 0, 255)  # left half red (BGR)
    view.set_frame(frame)
    status, kind, body = get(view.url + 'frame.jpg')
    assert status == 200 and kind == 'image/jpeg'
    decoded = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == frame.shape
    assert decoded[45, 20, 2] > 200 and decoded[45, 140, 2] < 50


def test_websocket_gets_state_events_and_frames(view):
    view.event('age', {'group': 'senior', 'confidence': 0.8, 'unsure': False})
    with pytest.raises(ValueError, match='unknown event kind'):
        view.event('nonsense', {})

    async def session():
        async with ClientSession() as client:
            async with client.ws_connect(view.url + 'ws') as ws:
                hello = json.loads((await ws.receive(timeout=10)).data)
                assert hello['type'] == 'hello'
                assert hello['state']['age']['group'] == 'senior'
                view.event('caption', {'text': '안녕하세요'})
                view.set_frame(np.full((36, 64, 3), 128, np.uint8))
                kinds = set()
                while kinds != {'caption', 'frame'}:
                    message = await ws.receive(timeout=10)
                    if message.type == WSMsgType.TEXT:
                        event = json.loads(message.data)
                        assert event == {**event, 'type': 'caption', 'text': '안녕하세요'}
                        kinds.add('caption')
                    else:
                        assert message.type == WSMsgType.BINARY
                        assert message.data[:2] == b'\xff\xd8'  # JPEG start of image
                        kinds.add('frame')
                assert view.counts['clients'] == 1

    asyncio.run(session())
    assert view.counts['frames_sent'] >= 1

    async def foreign_page():
        async with ClientSession() as client:
            with pytest.raises(Exception, match='403'):
                await client.ws_connect(view.url + 'ws', headers={'Origin': 'http://evil.example'})

    asyncio.run(foreign_page())


def test_chat_uses_the_estimates_and_refuses_bad_requests(view):
    api = view.url + 'api/chat'
    status, answer = post_json(api, {'text': ' 안녕 ', 'age_group': ''})
    assert status == 200 and answer['success'] and answer['reply_text'] == '녕안'
    assert view.chat_calls.requests[-1] == ('안녕', 'adult', 'neutral')  # nothing estimated yet
    view.event('age', {'group': 'child', 'confidence': 0.9, 'unsure': False})
    view.event('emotion', {'label': 'happy', 'confidence': 0.7, 'face': True})
    post_json(api, {'text': '배고파', 'age_group': ''})
    assert view.chat_calls.requests[-1] == ('배고파', 'child', 'happy')
    post_json(api, {'text': '배고파', 'age_group': 'senior'})
    assert view.chat_calls.requests[-1] == ('배고파', 'senior', 'happy')
    view.event('emotion', {'label': 'happy', 'confidence': 0.7, 'face': False})
    post_json(api, {'text': '배고파'})
    assert view.chat_calls.requests[-1] == ('배고파', 'child', 'neutral')
    calls = len(view.chat_calls.requests)
    for body, why in (
        ({'text': '   '}, 'type a message'),
        ({'text': '가' * 21}, 'longer than 20'),
        ({'text': '안녕', 'age_group': 'teen'}, 'age_group must be one of'),
        ([1, 2], 'JSON object'),
        (b'not json', 'not JSON'),
    ):
        status, answer = post_json(api, body)
        assert status == 400 and not answer['success'] and why in answer['error'], answer
    status, answer = post_json(api, {'text': '안녕'}, Origin='http://evil.example')
    assert status == 403 and 'other sites' in answer['error']
    status, answer = post_json(api, {'text': '안녕'}, **{'Content-Type': 'text/plain'})
    assert status == 415  # a form of another site could send text/plain without a preflight
    origin = view.url.rstrip('/')
    assert post_json(api, {'text': '안녕'}, Origin=origin)[0] == 200  # the page itself
    calls += 1
    assert len(view.chat_calls.requests) == calls  # refused requests never reach the service
    assert view.snapshot()['chat']['text'] == '안녕'  # the last one answered


def test_chat_without_an_answer_times_out_on_the_page():
    view = WebView(Chat(answer=False), Settings(chat_timeout_s=0.5))
    url = view.start('127.0.0.1', 0)
    try:
        status, answer = post_json(url + 'api/chat', {'text': '안녕'})
        assert status == 200 and not answer['success']
        assert 'no reply within' in answer['error'] and 'dialogue_node' in answer['error']
        assert view.counts['chat_failed'] == 1
    finally:
        view.stop()


def test_a_busy_port_is_a_clear_error_and_stop_frees_the_port():
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = busy.getsockname()[1]
        view = WebView(Chat())
        with pytest.raises(WebViewError, match=f'127.0.0.1:{port}.*another port'):
            view.start('127.0.0.1', port)
    first = WebView(Chat())
    url = first.start('127.0.0.1', 0)
    port = first.address[1]
    first.stop()
    first.stop()  # idempotent
    again = WebView(Chat())
    assert again.start('127.0.0.1', port) == url
    again.stop()
