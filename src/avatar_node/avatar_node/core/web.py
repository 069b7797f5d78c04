"""The browser view's web app (aiohttp), without ROS: what web_view serves and pushes.

:class:`WebView` keeps what the page shows (the newest avatar frame and the latest caption,
heard text, partial transcript, age group, emotion and speaking state) and runs an aiohttp
server in its own thread with its own asyncio loop. ROS callbacks (any thread) feed it through
:meth:`WebView.set_frame` and :meth:`WebView.event`; the page gets them over one WebSocket
(``/ws``): JSON text messages for events, binary messages for JPEG frames, at most ``max_fps``
per second and only while a page is connected. Typed chat is ``POST /api/chat`` with
``{"text": ..., "age_group": ""|child|adult|senior}``; the answer comes from the `chat` callable
given by the node (a ``concurrent.futures.Future`` of a dict), so this module never imports rclpy.

Routes: ``/`` (the page), ``/static/*`` (its script and style), ``/ws``, ``/api/chat``,
``/api/state`` (the current state as JSON) and ``/frame.jpg`` (the newest frame). Other web sites
open in the same browser cannot use them: the WebSocket and the chat refuse a request whose
``Origin`` is not the page's own, and the chat takes only ``application/json`` (which a foreign
page cannot send without a CORS preflight, which is not answered).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Set

import cv2
import numpy as np
from aiohttp import WSMsgType, web

#: The page, its script and its style (installed with the package: see setup.py).
STATIC_DIR = Path(__file__).resolve().parent.parent / 'web'
AGE_CHOICES = ('', 'child', 'adult', 'senior')  # '' = the latest estimate (adult if none)
#: Kinds of events the page understands (web_view.js renders each).
EVENT_KINDS = ('caption', 'heard', 'partial', 'age', 'emotion', 'speaking', 'chat', 'status')

ChatCall = Callable[[str, str, str], 'concurrent.futures.Future[Dict[str, Any]]']


class WebViewError(OSError):
    """The server could not start (address in use, bad host); the text says what to change."""


def check_host(host: str) -> bool:
    """Return True for 'localhost' or a literal IPv4/IPv6 address (what the server can bind)."""
    if host == 'localhost':
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def url_of(host: str, port: int) -> str:
    """Return the page's URL for a bound address (0.0.0.0 / :: are opened as 127.0.0.1)."""
    if host in ('0.0.0.0', '::', ''):
        host = '127.0.0.1'
    if ':' in host:
        host = f'[{host}]'
    return f'http://{host}:{port}/'


@dataclass
class Settings:
    """What may change while the server runs (the node's dynamic parameters)."""

    max_fps: float = 10.0
    jpeg_quality: int = 80
    chat_timeout_s: float = 15.0
    max_chat_chars: int = 300


class WebView:
    """State of the page, the aiohttp server thread and the connected WebSockets."""

    def __init__(self, chat: ChatCall, settings: Optional[Settings] = None, log=print):
        self.chat = chat
        self.settings = settings or Settings()
        self.log = log
        self.state: Dict[str, Dict[str, Any]] = {}
        self.counts: Dict[str, int] = {
            'frames_sent': 0,
            'clients': 0,
            'chat_requests': 0,
            'chat_failed': 0,
        }
        self._lock = threading.Lock()
        self._frame: Optional[np.ndarray] = None
        self._frame_seq = 0
        self._jpeg: Optional[bytes] = None
        self._jpeg_seq = -1
        self._clients: Set[web.WebSocketResponse] = set()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._runner: Optional[web.AppRunner] = None
        self._stop: Optional[asyncio.Event] = None
        self.address: Optional[tuple] = None

    # -- feeding (any thread) -------------------------------------------------------------------
    def set_frame(self, bgr: np.ndarray) -> None:
        """Offer a new avatar frame (H, W, 3 uint8 BGR); it is encoded only when sent."""
        with self._lock:
            self._frame = bgr
            self._frame_seq += 1

    def event(self, kind: str, data: Dict[str, Any]) -> None:
        """Record the latest `kind` state (one of EVENT_KINDS) and push it to every page."""
        if kind not in EVENT_KINDS:
            raise ValueError(f'unknown event kind {kind!r}')
        data = dict(data, time=time.time())
        with self._lock:
            self.state[kind] = data
        loop = self._loop
        if loop is not None and not loop.is_closed():
            text = json.dumps({'type': kind, **data}, ensure_ascii=False)
            try:
                loop.call_soon_threadsafe(self._broadcast_text, text)
            except RuntimeError:  # the loop closed between the check and the call
                pass

    def snapshot(self) -> Dict[str, Any]:
        """Return the current state (what a newly connected page is sent first)."""
        with self._lock:
            return {kind: dict(value) for kind, value in self.state.items()}

    # -- server lifecycle --------------------------------------------------------------------
    def start(self, host: str, port: int, timeout_s: float = 10.0) -> str:
        """Bind and serve in a background thread; return the page's URL.

        Raises WebViewError when the address cannot be bound (in use, not this machine's).
        """
        if self._thread is not None:
            raise RuntimeError('the web view is already running')
        ready = threading.Event()
        failure: list = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve(host, port, ready, failure))
            except Exception as error:  # noqa: BLE001 - handed to start()
                failure.append(error)
                ready.set()
            finally:
                self._loop = None
                loop.close()

        self._thread = threading.Thread(target=serve, name='web_view', daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise WebViewError(f'the web server did not start within {timeout_s:.0f} s')
        if failure:
            self._thread.join(timeout_s)
            self._thread = None
            error = failure[0]
            raise WebViewError(
                f'cannot serve the web view on {host}:{port}: {error}. Choose another port '
                "(parameter port, or 0 for any free one) or host (e.g. 127.0.0.1)"
            ) from error
        return url_of(*self.address)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close every page's WebSocket and stop the server (idempotent)."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass
        thread.join(timeout_s)
        self._thread = None
        self.address = None

    async def _serve(self, host: str, port: int, ready: threading.Event, failure: list):
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = self.make_app()
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            failure.append(error)
            ready.set()
            return
        bound = runner.addresses[0]
        self.address = (bound[0], bound[1])
        self._runner = runner
        pump = asyncio.ensure_future(self._frame_pump())
        ready.set()
        try:
            await self._stop.wait()
        finally:
            pump.cancel()
            for ws in list(self._clients):
                await ws.close()
            await runner.cleanup()
            self._runner = None

    # -- the app -----------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        """Return the aiohttp application (routes listed in the module docstring)."""
        app = web.Application(client_max_size=64 * 1024)
        app.add_routes(
            [
                web.get('/', self._index),
                web.get('/ws', self._websocket),
                web.post('/api/chat', self._chat),
                web.get('/api/state', self._state),
                web.get('/frame.jpg', self._frame_jpeg),
                web.static('/static', STATIC_DIR),
            ]
        )
        return app

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / 'index.html', headers={'Cache-Control': 'no-cache'})

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response({'state': self.snapshot(), 'counts': dict(self.counts)})

    async def _frame_jpeg(self, request: web.Request) -> web.Response:
        jpeg = await self._encoded_frame()
        if jpeg is None:
            return web.Response(status=404, text='no avatar frame received yet')
        return web.Response(body=jpeg, content_type='image/jpeg')

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not same_origin(request):
            return web.Response(status=403, text='the WebSocket is for this page only')
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=64 * 1024)
        await ws.prepare(request)
        self._clients.add(ws)
        self.counts['clients'] = len(self._clients)
        try:
            await ws.send_str(
                json.dumps({'type': 'hello', 'state': self.snapshot()}, ensure_ascii=False)
            )
            jpeg = await self._encoded_frame()
            if jpeg is not None:  # the page shows a picture at once, before the next frame
                self.counts['frames_sent'] += 1
                await ws.send_bytes(jpeg)
            async for message in ws:  # the page sends nothing we need; keep the socket open
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self._clients.discard(ws)
            self.counts['clients'] = len(self._clients)
        return ws

    async def _chat(self, request: web.Request) -> web.Response:
        self.counts['chat_requests'] += 1
        if not same_origin(request):
            return self._chat_refused('requests from other sites are refused', status=403)
        if request.content_type != 'application/json':
            return self._chat_refused('send the message as application/json', status=415)
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return self._chat_refused('the request body is not JSON')
        if not isinstance(body, dict):
            return self._chat_refused('the request body must be a JSON object')
        text = body.get('text')
        age = body.get('age_group', '')
        if not isinstance(text, str) or not text.strip():
            return self._chat_refused('type a message first')
        limit = self.settings.max_chat_chars
        if len(text) > limit:
            return self._chat_refused(f'the message is longer than {limit} characters')
        if age not in AGE_CHOICES:
            return self._chat_refused(f'age_group must be one of {list(AGE_CHOICES)}')
        age, emotion = self._chat_labels(age)
        text = text.strip()
        try:
            future = self.chat(text, age, emotion)
            result = await asyncio.wait_for(
                asyncio.wrap_future(future), self.settings.chat_timeout_s
            )
        except asyncio.TimeoutError:
            result = {
                'success': False,
                'error': f'no reply within {self.settings.chat_timeout_s:.0f} s '
                '(is dialogue_node running?)',
            }
        except Exception as error:  # noqa: BLE001 - shown on the page, the server goes on
            result = {'success': False, 'error': str(error)}
        if not result.get('success'):
            self.counts['chat_failed'] += 1
        result = dict(result, text=text, age_group=age, emotion=emotion)
        self.event('chat', result)
        return web.json_response(result, dumps=lambda v: json.dumps(v, ensure_ascii=False))

    def _chat_refused(self, why: str, status: int = 400) -> web.Response:
        self.counts['chat_failed'] += 1
        return web.json_response({'success': False, 'error': why}, status=status)

    def _chat_labels(self, age: str) -> tuple:
        """Return the age group and emotion a typed message is answered for.

        A chosen group is used as is; '' takes the latest age estimate (adult before any). The
        emotion is the latest face emotion while a face is seen, else neutral.
        """
        state = self.snapshot()
        if not age:
            age = state.get('age', {}).get('group', 'adult')
        emotion_state = state.get('emotion', {})
        emotion = emotion_state.get('label', 'neutral') if emotion_state.get('face') else 'neutral'
        return age, emotion

    # -- pushing ------------------------------------------------------------------------------
    def _broadcast_text(self, text: str) -> None:
        for ws in list(self._clients):
            if not ws.closed:
                asyncio.ensure_future(self._send(ws, text))

    @staticmethod
    async def _send(ws: web.WebSocketResponse, payload) -> None:
        try:
            if isinstance(payload, bytes):
                await ws.send_bytes(payload)
            else:
                await ws.send_str(payload)
        except (ConnectionError, RuntimeError):  # the page went away meanwhile
            pass

    async def _encoded_frame(self) -> Optional[bytes]:
        """Return the newest frame as JPEG, encoding it (off the loop) only when it is new."""
        with self._lock:
            frame, seq = self._frame, self._frame_seq
            if frame is None:
                return None
            if seq == self._jpeg_seq:
                return self._jpeg
        quality = int(self.settings.jpeg_quality)
        loop = asyncio.get_running_loop()
        jpeg = await loop.run_in_executor(None, encode_jpeg, frame, quality)
        with self._lock:
            if seq > self._jpeg_seq:
                self._jpeg, self._jpeg_seq = jpeg, seq
        return jpeg

    async def _frame_pump(self) -> None:
        """Send each new frame to every page, at most max_fps per second."""
        sent_seq = -1
        while True:
            started = time.monotonic()
            if self._clients and self._frame_seq != sent_seq:
                sent_seq = self._frame_seq
                jpeg = await self._encoded_frame()
                if jpeg is not None:
                    clients = [ws for ws in self._clients if not ws.closed]
                    self.counts['frames_sent'] += len(clients)
                    await asyncio.gather(*(self._send(ws, jpeg) for ws in clients))
            period = 1.0 / max(self.settings.max_fps, 0.1)
            await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))


def same_origin(request: web.Request) -> bool:
    """Return True unless the request carries an Origin other than the server's own address."""
    origin = request.headers.get('Origin')
    if origin is None:
        return True  # not sent by a web page (curl, a script, a test client)
    return origin == f'{request.scheme}://{request.host}'


def encode_jpeg(bgr: np.ndarray, quality: int) -> bytes:
    """Encode a BGR frame as JPEG (OpenCV) at `quality` 1..100."""
    ok, encoded = cv2.imencode('.jpg', bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError(f'OpenCV could not encode a {bgr.shape} frame as JPEG')
    return encoded.tobytes()
