"""The avatar canvas, drawn with OpenCV: the user's mirror (left) and the speaking agent (right).

Faces are parametric cartoons driven by VRM expression weights (happy, angry, sad, relaxed,
surprised, neutral): brows, eyes, cheeks and the mouth curve follow the weights; the agent's mouth
opens with the TTS envelope and takes the shape of the current viseme (aa, ih, ou, ee, oh).
OpenCV's Hershey fonts have no Hangul, so text (caption, labels) is drawn with Pillow and a Korean
TrueType font (Debian fonts-nanum), cached, and blended in; without such a font, captions fall
back to an ASCII notice and the avatars still render.
"""

from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from avatar_node.core.expressions import FER_LABELS, VRM_EXPRESSIONS
from avatar_node.core.text import VISEMES

#: Korean-capable fonts searched in order when no font is configured.
FONT_CANDIDATES = (
    '/usr/share/fonts/truetype/nanum/NanumSquareRoundB.ttf',
    '/usr/share/fonts/truetype/nanum/NanumBarunGothic.ttf',
    '/usr/share/fonts/truetype/nanum/NanumGothic.ttf',
    '/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc',
    '/usr/share/fonts/truetype/unfonts-core/UnDotum.ttf',
    '/usr/share/fonts/truetype/baekmuk/gulim.ttf',
)
FONT_HINT = (
    'install a Korean font with `sudo apt-get install fonts-nanum` or set parameter font_path'
)

EMOTION_KO = {
    'angry': '화남',
    'disgust': '싫음',
    'fear': '두려움',
    'happy': '기쁨',
    'sad': '슬픔',
    'surprise': '놀람',
    'neutral': '평온',
}
AGE_KO = {'child': '어린이', 'adult': '성인', 'senior': '어르신'}

# Palette (BGR).
INK = (62, 48, 44)
WHITE = (255, 255, 255)


def find_font(configured: str = '') -> Optional[str]:
    """Return the path of a TrueType font with Hangul.

    That is `configured` (which must exist), else the first installed candidate.

    Raises FileNotFoundError when `configured` is given but missing; returns None when no
    candidate is installed (the caller degrades to ASCII captions).
    """
    if configured:
        if not os.path.isfile(configured):
            raise FileNotFoundError(f"font_path '{configured}' does not exist; {FONT_HINT}")
        return configured
    for candidate in FONT_CANDIDATES:
        if os.path.isfile(candidate):
            return candidate
    found = sorted(glob.glob('/usr/share/fonts/**/Nanum*.ttf', recursive=True))
    return found[0] if found else None


@dataclass
class FacePose:
    """Everything that moves on one face."""

    weights: Dict[str, float] = field(
        default_factory=lambda: {n: (1.0 if n == 'neutral' else 0.0) for n in VRM_EXPRESSIONS}
    )
    mouth_open: float = 0.0  # speech opening 0..1 (agent)
    visemes: Dict[str, float] = field(default_factory=dict)
    blink: float = 0.0  # 0 open .. 1 closed
    look: Tuple[float, float] = (0.0, 0.0)  # gaze offset, -1..1


@dataclass
class Scene:
    """One frame's content."""

    t: float = 0.0
    user: FacePose = field(default_factory=FacePose)
    user_face_found: bool = False
    user_probabilities: Sequence[float] = (0, 0, 0, 0, 0, 0, 1)
    user_label: str = 'neutral'
    agent: FacePose = field(default_factory=FacePose)
    agent_speaking: bool = False
    agent_level: float = 0.0
    age_group: str = 'adult'
    caption: str = ''
    progress: float = 0.0


def _blink(t: float, seed: float) -> float:
    """Blink amount 0..1: a 150 ms blink every 2.7-4.7 s (deterministic per face)."""
    period = 3.7 + 1.0 * math.sin(seed * 12.9898)
    phase = (t + seed * period) % period
    return max(0.0, 1.0 - abs(phase - 0.075) / 0.075) if phase < 0.15 else 0.0


def blink_at(t: float, seed: float) -> float:
    """Public wrapper of the blink schedule (used by the node to fill FacePose.blink)."""
    return _blink(t, seed)


class TextPainter:
    """Draws (cached) text with Pillow and a Korean font; ASCII fallback with OpenCV."""

    def __init__(self, font_path: Optional[str]):
        self.font_path = font_path
        self._fonts = {}
        self._cache: Dict[tuple, Tuple[np.ndarray, np.ndarray]] = {}

    @property
    def has_hangul(self) -> bool:
        """True when a Korean font is available."""
        return self.font_path is not None

    def _font(self, size: int):
        from PIL import ImageFont

        if size not in self._fonts:
            self._fonts[size] = ImageFont.truetype(self.font_path, size)
        return self._fonts[size]

    def measure(self, text: str, size: int) -> int:
        """Width in pixels of text at `size`."""
        if self.font_path is None:
            return cv2.getTextSize(_ascii(text), cv2.FONT_HERSHEY_SIMPLEX, size / 30.0, 1)[0][0]
        return int(math.ceil(self._font(size).getlength(text)))

    def sprite(
        self, text: str, size: int, color: Tuple[int, int, int]
    ) -> Tuple[np.ndarray, np.ndarray]:
        """(BGR, alpha float32) image of text, cached."""
        key = (text, size, color)
        if key in self._cache:
            return self._cache[key]
        if self.font_path is None:
            scale = size / 30.0
            shown = _ascii(text)
            (w, h), base = cv2.getTextSize(shown, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            mask = np.zeros((h + base + 4, w + 4), np.uint8)
            cv2.putText(
                mask, shown, (2, h + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 1, cv2.LINE_AA
            )
        else:
            from PIL import Image, ImageDraw

            font = self._font(size)
            left, top, right, bottom = font.getbbox(text or ' ')
            image = Image.new('L', (max(1, right - min(0, left) + 2), max(1, bottom + 4)), 0)
            ImageDraw.Draw(image).text((1 - min(0, left), 1), text, font=font, fill=255)
            mask = np.asarray(image)
        alpha = (mask.astype(np.float32) / 255.0)[:, :, None]
        bgr = np.empty(mask.shape + (3,), np.uint8)
        bgr[:] = color
        if len(self._cache) > 512:
            self._cache.clear()
        self._cache[key] = (bgr, alpha)
        return bgr, alpha

    def draw(
        self,
        canvas: np.ndarray,
        text: str,
        origin: Tuple[int, int],
        size: int,
        color: Tuple[int, int, int] = INK,
        anchor: str = 'left',
    ) -> int:
        """Blend text onto canvas at origin; return its width.

        `origin` is the text's top-left corner, or its top centre with anchor='center'.
        """
        bgr, alpha = self.sprite(text, size, color)
        h, w = alpha.shape[:2]
        x, y = origin
        if anchor == 'center':
            x -= w // 2
        x0, y0, x1, y1 = (
            max(0, x),
            max(0, y),
            min(canvas.shape[1], x + w),
            min(canvas.shape[0], y + h),
        )
        if x1 <= x0 or y1 <= y0:
            return w
        region = canvas[y0:y1, x0:x1]
        a = alpha[y0 - y : y1 - y, x0 - x : x1 - x]
        region[:] = (region * (1.0 - a) + bgr[y0 - y : y1 - y, x0 - x : x1 - x] * a).astype(
            np.uint8
        )
        return w

    def wrap(self, text: str, size: int, width: int) -> List[str]:
        """Break text into lines no wider than `width` (at spaces; long words are cut)."""
        lines: List[str] = []
        for paragraph in text.split('\n'):
            line = ''
            for word in paragraph.split(' '):
                candidate = f'{line} {word}' if line else word
                if self.measure(candidate, size) <= width:
                    line = candidate
                    continue
                if line:
                    lines.append(line)
                line = word
                while self.measure(line, size) > width and len(line) > 1:
                    cut = len(line) - 1
                    while cut > 1 and self.measure(line[:cut], size) > width:
                        cut -= 1
                    lines.append(line[:cut])
                    line = line[cut:]
            if line:
                lines.append(line)
        return lines


def _ascii(text: str) -> str:
    shown = ''.join(c for c in text if ord(c) < 128).strip()
    return shown if shown else ''


def _mix(a: Sequence[int], b: Sequence[int], t: float) -> Tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))


def _pt(x: float, y: float, shift: int = 4) -> Tuple[int, int]:
    return int(round(x * (1 << shift))), int(round(y * (1 << shift)))


def _poly(points: np.ndarray, shift: int = 4) -> np.ndarray:
    return np.round(points * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)


class Character:
    """The look of one avatar (colours and hair style)."""

    def __init__(self, skin, hair, shirt, card, accent, hair_style: str):
        self.skin, self.hair, self.shirt, self.card, self.accent = skin, hair, shirt, card, accent
        self.hair_style = hair_style
        self.skin_shade = _mix(skin, (90, 110, 170), 0.18)
        self.outline = _mix(skin, (40, 50, 80), 0.55)


USER = Character(
    skin=(178, 211, 246),
    hair=(44, 72, 120),
    shirt=(196, 150, 84),
    card=(246, 234, 220),
    accent=(196, 140, 70),
    hair_style='short',
)
AGENT = Character(
    skin=(190, 218, 250),
    hair=(62, 50, 88),
    shirt=(150, 110, 200),
    card=(244, 228, 240),
    accent=(170, 100, 200),
    hair_style='long',
)


class AvatarRenderer:
    """Renders a :class:`Scene` to a BGR uint8 image of width x height."""

    def __init__(
        self,
        width: int = 960,
        height: int = 540,
        font_path: Optional[str] = None,
        idle_motion: bool = True,
    ):
        if width < 320 or height < 180:
            raise ValueError(f'canvas {width}x{height} is too small; use at least 320x180')
        self.width, self.height = width, height
        self.idle_motion = idle_motion  # gentle head bob (blinks come with the FacePose)
        self.text = TextPainter(font_path)
        self.u = height / 540.0  # layout unit: 1 at 540 px high
        u = self.u
        margin = int(18 * u)
        self.caption_box = (margin, int(height - 118 * u), width - margin, height - margin)
        card_bottom = self.caption_box[1] - int(14 * u)
        half = width // 2
        self.cards = [
            (margin, margin, half - margin // 2, card_bottom),
            (half + margin // 2, margin, width - margin, card_bottom),
        ]
        tray_h = int(76 * u)
        self.trays = [
            (x0 + int(10 * u), y1 - tray_h - int(10 * u), x1 - int(10 * u), y1 - int(10 * u))
            for x0, _, x1, y1 in self.cards
        ]
        self._background = self._draw_background()
        self._caption_cache: Dict[tuple, np.ndarray] = {}

    # -- static layer -----------------------------------------------------------------------------
    def _draw_background(self) -> np.ndarray:
        h, w, u = self.height, self.width, self.u
        top, bottom = np.array([250, 246, 240], np.float32), np.array([236, 226, 214], np.float32)
        ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        canvas = (top * (1 - ramp) + bottom * ramp).repeat(w, axis=1).astype(np.uint8)
        for (x0, y0, x1, y1), who in zip(self.cards, (USER, AGENT), strict=True):
            self._rounded_rect(
                canvas,
                (x0 + int(4 * u), y0 + int(6 * u), x1 + int(4 * u), y1 + int(6 * u)),
                int(22 * u),
                _mix(who.card, (150, 140, 130), 0.35),
            )
            self._rounded_rect(canvas, (x0, y0, x1, y1), int(22 * u), who.card)
        x0, y0, x1, y1 = self.caption_box
        self._rounded_rect(
            canvas,
            (x0 + int(3 * u), y0 + int(5 * u), x1 + int(3 * u), y1 + int(5 * u)),
            int(18 * u),
            (205, 196, 188),
        )
        self._rounded_rect(canvas, self.caption_box, int(18 * u), WHITE)
        for tray, who in zip(self.trays, (USER, AGENT), strict=True):
            self._rounded_rect(canvas, tray, int(16 * u), _mix(who.card, WHITE, 0.55))
        size = int(24 * u)
        titles = ('나', '에이전트') if self.text.has_hangul else ('You', 'Agent')
        for (cx0, cy0, cx1, _), title, who in zip(self.cards, titles, (USER, AGENT), strict=True):
            self.text.draw(
                canvas,
                title,
                ((cx0 + cx1) // 2, cy0 + int(12 * u)),
                size,
                who.accent,
                anchor='center',
            )
        return canvas

    @staticmethod
    def _rounded_rect(canvas, box, radius, color) -> None:
        x0, y0, x1, y1 = box
        radius = max(1, min(radius, (x1 - x0) // 2, (y1 - y0) // 2))
        cv2.rectangle(canvas, (x0 + radius, y0), (x1 - radius, y1), color, -1, cv2.LINE_AA)
        cv2.rectangle(canvas, (x0, y0 + radius), (x1, y1 - radius), color, -1, cv2.LINE_AA)
        for cx, cy in (
            (x0 + radius, y0 + radius),
            (x1 - radius, y0 + radius),
            (x0 + radius, y1 - radius),
            (x1 - radius, y1 - radius),
        ):
            cv2.circle(canvas, (cx, cy), radius, color, -1, cv2.LINE_AA)

    # -- frame ------------------------------------------------------------------------------------
    def render(self, scene: Scene) -> np.ndarray:
        """Draw one frame."""
        canvas = self._background.copy()
        u = self.u
        for index, (who, pose) in enumerate(((USER, scene.user), (AGENT, scene.agent))):
            x0, y0, x1, _ = self.cards[index]
            tray_top = self.trays[index][1]
            top = y0 + int(74 * u)
            radius = min((x1 - x0) * 0.24, (tray_top - top) / 2.55)
            bob = (
                math.sin(scene.t * (1.7 if index else 1.3) + index) * 2.0 * u
                if self.idle_motion
                else 0.0
            )
            cx, cy = (x0 + x1) / 2.0, top + 1.22 * radius + bob
            self._draw_character(
                canvas, who, pose, cx, cy, radius, (x0, y0, x1, tray_top - int(4 * u))
            )
        self._draw_user_panel(canvas, scene)
        self._draw_agent_panel(canvas, scene)
        self._draw_caption(canvas, scene)
        return canvas

    def _draw_character(self, canvas, who: Character, pose: FacePose, cx, cy, r, card) -> None:
        w = pose.weights
        # body (bust), clipped to the card
        x0, y0, x1, y1 = card
        body = canvas[y0:y1, x0:x1]
        bx, by = cx - x0, cy - y0
        neck = np.array(
            [
                [bx - r * 0.28, by + r * 0.7],
                [bx + r * 0.28, by + r * 0.7],
                [bx + r * 0.3, by + r * 1.25],
                [bx - r * 0.3, by + r * 1.25],
            ]
        )
        cv2.fillPoly(body, [_poly(neck)], who.skin_shade, cv2.LINE_AA, 4)
        cv2.ellipse(
            body,
            _pt(bx, by + r * 2.25),
            _pt(r * 1.25, r * 1.15),
            0,
            180,
            360,
            who.shirt,
            -1,
            cv2.LINE_AA,
            4,
        )
        cv2.ellipse(
            body,
            _pt(bx, by + r * 1.18),
            _pt(r * 0.34, r * 0.16),
            0,
            0,
            180,
            _mix(who.shirt, WHITE, 0.35),
            -1,
            cv2.LINE_AA,
            4,
        )
        if who.hair_style == 'long':  # hair falling behind the head to the shoulders
            back = np.array(
                [
                    [bx - r * 1.08, by - r * 0.2],
                    [bx + r * 1.08, by - r * 0.2],
                    [bx + r * 1.18, by + r * 1.35],
                    [bx + r * 0.55, by + r * 1.45],
                    [bx - r * 0.55, by + r * 1.45],
                    [bx - r * 1.18, by + r * 1.35],
                ]
            )
            cv2.fillPoly(body, [_poly(back)], who.hair, cv2.LINE_AA, 4)
            cv2.circle(
                body, _pt(bx, by - r * 0.12), int(r * 1.1 * 16), who.hair, -1, cv2.LINE_AA, 4
            )
        # ears and head
        for side in (-1, 1):
            cv2.circle(
                body,
                _pt(bx + side * r * 0.98, by + r * 0.08),
                int(r * 0.2 * 16),
                who.skin_shade,
                -1,
                cv2.LINE_AA,
                4,
            )
        skin = who.skin
        anger = w.get('angry', 0.0)
        if anger > 0:
            skin = _mix(skin, (150, 160, 245), 0.35 * anger)
        cv2.ellipse(
            body, _pt(bx, by), _pt(r * 0.98, r * 1.02), 0, 0, 360, skin, -1, cv2.LINE_AA, 4
        )
        cv2.ellipse(
            body,
            _pt(bx, by),
            _pt(r * 0.98, r * 1.02),
            0,
            0,
            360,
            who.outline,
            max(1, int(r * 0.02)),
            cv2.LINE_AA,
            4,
        )
        self._draw_hair_front(body, who, bx, by, r)
        self._draw_face(body, who, pose, bx, by, r)

    @staticmethod
    def _draw_hair_front(img, who: Character, bx, by, r) -> None:
        if who.hair_style == 'short':
            cap = cv2.ellipse2Poly(
                (int(bx), int(by - r * 0.05)), (int(r * 1.04), int(r * 1.08)), 0, 180, 360, 6
            )
            fringe = [(bx + r * 1.0, by - r * 0.1)]
            for k in range(7, -1, -1):  # scalloped fringe from right to left
                x = bx - r * 0.95 + k * (r * 1.9 / 7)
                fringe.append((x, by - r * (0.42 if k % 2 else 0.3)))
            fringe.append((bx - r * 1.0, by - r * 0.1))
            points = np.vstack([cap.astype(np.float64), np.array(fringe)])
            cv2.fillPoly(img, [_poly(points)], who.hair, cv2.LINE_AA, 4)
            cv2.ellipse(
                img,
                _pt(bx - r * 0.35, by - r * 0.78),
                _pt(r * 0.28, r * 0.08),
                -20,
                0,
                360,
                _mix(who.hair, WHITE, 0.25),
                -1,
                cv2.LINE_AA,
                4,
            )
        else:
            cap = cv2.ellipse2Poly(
                (int(bx), int(by - r * 0.02)), (int(r * 1.06), int(r * 1.1)), 0, 180, 360, 6
            )
            bangs = np.array(
                [
                    [bx + r * 1.06, by + r * 0.35],
                    [bx + r * 0.78, by - r * 0.25],
                    [bx + r * 0.1, by - r * 0.48],
                    [bx - r * 0.35, by - r * 0.3],
                    [bx - r * 0.8, by - r * 0.15],
                    [bx - r * 1.06, by + r * 0.35],
                ]
            )
            cv2.fillPoly(
                img, [_poly(np.vstack([cap.astype(np.float64), bangs]))], who.hair, cv2.LINE_AA, 4
            )
            cv2.ellipse(
                img,
                _pt(bx + r * 0.3, by - r * 0.8),
                _pt(r * 0.3, r * 0.08),
                15,
                0,
                360,
                _mix(who.hair, WHITE, 0.3),
                -1,
                cv2.LINE_AA,
                4,
            )
            # a hair clip
            clip = (bx + r * 0.62, by - r * 0.52)
            cv2.circle(img, _pt(*clip), int(r * 0.11 * 16), who.accent, -1, cv2.LINE_AA, 4)
            cv2.circle(
                img,
                _pt(*clip),
                int(r * 0.05 * 16),
                _mix(who.accent, WHITE, 0.6),
                -1,
                cv2.LINE_AA,
                4,
            )

    def _draw_face(self, img, who: Character, pose: FacePose, bx, by, r) -> None:
        w = pose.weights
        happy, angry, sad = w.get('happy', 0.0), w.get('angry', 0.0), w.get('sad', 0.0)
        relaxed, surprised = w.get('relaxed', 0.0), w.get('surprised', 0.0)
        thick = max(2, int(r * 0.055))
        eye_y = by + r * 0.08
        eye_dx = r * 0.36
        # cheeks
        blush = min(1.0, happy + 0.5 * relaxed + 0.3)
        cheek_color = _mix(who.skin, (150, 140, 250), 0.45 * blush)
        for side in (-1, 1):
            cv2.ellipse(
                img,
                _pt(bx + side * r * 0.55, by + r * 0.38),
                _pt(r * 0.17, r * 0.1),
                0,
                0,
                360,
                cheek_color,
                -1,
                cv2.LINE_AA,
                4,
            )
        # eyes
        openness = (1.0 - pose.blink) * (1.0 + 0.35 * surprised - 0.3 * relaxed - 0.15 * angry)
        squint = max(0.0, happy - 0.45) / 0.55  # eyes become happy arcs
        for side in (-1, 1):
            ex = bx + side * eye_dx
            if openness < 0.12:
                cv2.line(
                    img,
                    _pt(ex - r * 0.1, eye_y),
                    _pt(ex + r * 0.1, eye_y),
                    INK,
                    thick,
                    cv2.LINE_AA,
                    4,
                )
            elif squint > 0.5:
                cv2.ellipse(
                    img,
                    _pt(ex, eye_y + r * 0.05),
                    _pt(r * 0.12, r * 0.1 * openness),
                    0,
                    180,
                    360,
                    INK,
                    thick,
                    cv2.LINE_AA,
                    4,
                )
            else:
                ry = r * 0.14 * openness * (1.0 - 0.5 * squint)
                rx = r * 0.1 * (1.0 + 0.15 * surprised)
                gx, gy = pose.look
                cv2.ellipse(
                    img,
                    _pt(ex + gx * r * 0.03, eye_y + gy * r * 0.03),
                    _pt(rx, ry),
                    0,
                    0,
                    360,
                    INK,
                    -1,
                    cv2.LINE_AA,
                    4,
                )
                cv2.circle(
                    img,
                    _pt(ex + rx * 0.35, eye_y - ry * 0.4),
                    int(max(1.0, r * 0.035) * 16),
                    WHITE,
                    -1,
                    cv2.LINE_AA,
                    4,
                )
            # brows: raised by surprise, inner ends down for anger, up for sadness
            lift = r * (0.34 + 0.14 * surprised - 0.04 * angry + 0.03 * sad)
            tilt = r * (0.12 * angry - 0.12 * sad)
            inner = (bx + side * r * 0.2, eye_y - lift + tilt)
            outer = (bx + side * r * 0.52, eye_y - lift - tilt * 0.4 - r * 0.02)
            cv2.line(
                img, _pt(*inner), _pt(*outer), _mix(who.hair, INK, 0.4), thick, cv2.LINE_AA, 4
            )
        # tear when very sad
        if sad > 0.6:
            tx, ty = bx - eye_dx - r * 0.05, eye_y + r * 0.2
            drop = np.array(
                [
                    [tx, ty - r * 0.08],
                    [tx - r * 0.05, ty + r * 0.02],
                    [tx + r * 0.05, ty + r * 0.02],
                ]
            )
            cv2.fillPoly(img, [_poly(drop)], (240, 200, 140), cv2.LINE_AA, 4)
            cv2.circle(
                img,
                _pt(tx, ty + r * 0.03),
                int(r * 0.05 * 16),
                (240, 200, 140),
                -1,
                cv2.LINE_AA,
                4,
            )
        self._draw_mouth(img, pose, bx, by + r * 0.52, r)

    @staticmethod
    def _draw_mouth(img, pose: FacePose, mx, my, r) -> None:
        w = pose.weights
        happy, angry, sad = w.get('happy', 0.0), w.get('angry', 0.0), w.get('sad', 0.0)
        relaxed, surprised = w.get('relaxed', 0.0), w.get('surprised', 0.0)
        curve = 0.9 * happy + 0.45 * relaxed - 0.75 * sad - 0.45 * angry  # >0 smile, <0 frown
        visemes = pose.visemes or {}
        v_total = sum(visemes.get(v, 0.0) for v in VISEMES)
        # viseme shape: (width factor, height factor)
        shapes = {
            'aa': (1.0, 1.0),
            'ih': (1.15, 0.45),
            'ou': (0.55, 0.75),
            'ee': (1.2, 0.6),
            'oh': (0.75, 0.95),
        }
        if v_total > 1e-3:
            wf = sum(shapes[v][0] * visemes.get(v, 0.0) for v in VISEMES) / v_total
            hf = sum(shapes[v][1] * visemes.get(v, 0.0) for v in VISEMES) / v_total
        else:
            wf, hf = 1.0, 1.0
        half_w = (
            r * (0.24 + 0.1 * happy - 0.08 * surprised) * (wf if pose.mouth_open > 0.05 else 1.0)
        )
        opening = min(1.0, pose.mouth_open * hf + 0.55 * surprised + 0.15 * max(0.0, happy - 0.5))
        open_h = r * 0.42 * opening
        thick = max(2, int(r * 0.05))
        xs = np.linspace(-1.0, 1.0, 21)
        upper = np.stack(
            [mx + xs * half_w, my - curve * r * 0.13 * (xs**2) + curve * r * 0.03], axis=1
        )
        if open_h < r * 0.03:
            cv2.polylines(img, [_poly(upper)], False, INK, thick, cv2.LINE_AA, 4)
            return
        bulge = np.sqrt(np.clip(1.0 - xs**2, 0.0, 1.0))
        top = upper.copy()
        top[:, 1] -= 0.18 * open_h * bulge
        bottom = upper.copy()
        bottom[:, 1] += open_h * bulge
        outline = np.vstack([top, bottom[::-1]])
        cv2.fillPoly(img, [_poly(outline)], (70, 60, 150), cv2.LINE_AA, 4)
        if open_h > r * 0.12:  # tongue
            tongue_c = (mx, my + open_h * 0.62)
            mask = np.zeros(img.shape[:2], np.uint8)
            x0, y0 = int(max(0, mx - half_w - 2)), int(max(0, my - open_h - 2))
            x1, y1 = (
                int(min(img.shape[1], mx + half_w + 3)),
                int(min(img.shape[0], my + open_h * 1.3 + 3)),
            )
            roi_mask = mask[y0:y1, x0:x1]
            cv2.fillPoly(roi_mask, [_poly(outline - np.array([x0, y0]))], 255, cv2.LINE_AA, 4)
            tongue = img[y0:y1, x0:x1].copy()
            cv2.ellipse(
                tongue,
                _pt(tongue_c[0] - x0, tongue_c[1] - y0),
                _pt(half_w * 0.55, open_h * 0.42),
                0,
                0,
                360,
                (130, 120, 235),
                -1,
                cv2.LINE_AA,
                4,
            )
            a = (roi_mask.astype(np.float32) / 255.0)[:, :, None]
            region = img[y0:y1, x0:x1]
            region[:] = (region * (1 - a) + tongue * a).astype(np.uint8)
        cv2.polylines(img, [_poly(outline)], True, INK, max(1, thick - 1), cv2.LINE_AA, 4)

    # -- panels -----------------------------------------------------------------------------------
    def _draw_user_panel(self, canvas, scene: Scene) -> None:
        u = self.u
        x0, y0, x1, y1 = self.cards[0]
        if not scene.user_face_found:
            region = canvas[y0 + int(44 * u) : y1 - int(8 * u), x0 + int(8 * u) : x1 - int(8 * u)]
            region[:] = (
                region.astype(np.uint16) * 2 // 3 + np.array(USER.card, np.uint16) // 3
            ).astype(np.uint8)
        # mood bars: the smoothed probabilities of the 7 classes
        tx0, ty0, tx1, ty1 = self.trays[0]
        bar_w = (tx1 - tx0 - int(20 * u)) / 7.0
        base_y = ty1 - int(24 * u)
        bar_h = int(40 * u)
        size = int(13 * u)
        for k, label in enumerate(FER_LABELS):
            p = float(scene.user_probabilities[k]) if k < len(scene.user_probabilities) else 0.0
            bx0 = int(tx0 + 10 * u + k * bar_w + bar_w * 0.2)
            bx1 = int(tx0 + 10 * u + (k + 1) * bar_w - bar_w * 0.2)
            top = int(base_y - p * bar_h)
            cv2.rectangle(
                canvas, (bx0, base_y - bar_h), (bx1, base_y), _mix(USER.card, INK, 0.08), -1
            )
            color = USER.accent if label == scene.user_label else _mix(USER.accent, WHITE, 0.45)
            cv2.rectangle(canvas, (bx0, top), (bx1, base_y), color, -1)
            name = EMOTION_KO[label] if self.text.has_hangul else label[:3]
            self.text.draw(
                canvas, name, ((bx0 + bx1) // 2, base_y + int(3 * u)), size, INK, anchor='center'
            )
        if scene.user_face_found:
            status = (
                f'표정: {EMOTION_KO.get(scene.user_label, scene.user_label)}'
                if self.text.has_hangul
                else f'mood: {scene.user_label}'
            )
        else:
            status = '얼굴을 찾는 중…' if self.text.has_hangul else 'looking for a face...'
        self.text.draw(
            canvas,
            status,
            ((x0 + x1) // 2, y0 + int(44 * u)),
            int(18 * u),
            _mix(INK, WHITE, 0.25),
            anchor='center',
        )

    def _draw_agent_panel(self, canvas, scene: Scene) -> None:
        u = self.u
        x0, y0, x1, y1 = self.cards[1]
        if self.text.has_hangul:
            mode = f'{AGE_KO.get(scene.age_group, scene.age_group)} 맞춤 목소리'
            status = '말하는 중' if scene.agent_speaking else '듣는 중'
        else:
            mode, status = (
                f'voice: {scene.age_group}',
                'speaking' if scene.agent_speaking else 'listening',
            )
        self.text.draw(
            canvas,
            mode,
            ((x0 + x1) // 2, y0 + int(44 * u)),
            int(18 * u),
            _mix(INK, WHITE, 0.25),
            anchor='center',
        )
        # status pill with a level meter
        tx0, ty0, tx1, ty1 = self.trays[1]
        cx, cy = (tx0 + tx1) // 2, (ty0 + ty1) // 2
        pill_w, pill_h = int(150 * u), int(34 * u)
        color = AGENT.accent if scene.agent_speaking else _mix(AGENT.card, INK, 0.25)
        self._rounded_rect(
            canvas,
            (cx - pill_w // 2, cy - pill_h // 2, cx + pill_w // 2, cy + pill_h // 2),
            pill_h // 2,
            color,
        )
        self.text.draw(
            canvas,
            status,
            (cx - int(18 * u), cy - int(11 * u)),
            int(18 * u),
            WHITE,
            anchor='center',
        )
        for k in range(4):
            level = scene.agent_level if scene.agent_speaking else 0.0
            height = int((4 + 14 * level * (0.6 + 0.4 * math.sin(k * 1.7) ** 2)) * u)
            bx = cx + int((34 + k * 9) * u)
            cv2.rectangle(
                canvas, (bx, cy - height // 2), (bx + int(5 * u), cy + height // 2), WHITE, -1
            )

    def _draw_caption(self, canvas, scene: Scene) -> None:
        u = self.u
        x0, y0, x1, y1 = self.caption_box
        pad = int(14 * u)
        size = int(25 * u)
        if not scene.caption:
            hint = '대답을 기다리는 중…' if self.text.has_hangul else 'waiting for a reply...'
            self.text.draw(
                canvas,
                hint,
                ((x0 + x1) // 2, (y0 + y1) // 2 - size // 2 - int(2 * u)),
                size,
                (170, 160, 150),
                anchor='center',
            )
            return
        if not self.text.has_hangul and not _ascii(scene.caption):
            self.text.draw(
                canvas, '[Korean caption: install fonts-nanum]', (x0 + pad, y0 + pad), size, INK
            )
            return
        spoken = (
            int(round(len(scene.caption) * scene.progress))
            if scene.agent_speaking
            else len(scene.caption)
        )
        key = (scene.caption, spoken)
        patch = self._caption_cache.get(key)
        if patch is None:
            patch = self._caption_patch(
                scene.caption, spoken, size, x1 - x0 - 2 * pad, y1 - y0 - 2 * pad
            )
            if len(self._caption_cache) > 256:
                self._caption_cache.clear()
            self._caption_cache[key] = patch
        h, w = patch.shape[:2]
        canvas[y0 + pad : y0 + pad + h, x0 + pad : x0 + pad + w] = patch

    def _caption_patch(
        self, caption: str, spoken: int, size: int, width: int, height: int
    ) -> np.ndarray:
        """White patch with the caption wrapped to 2 lines: spoken part in ink, the rest grey."""
        patch = np.full((height, width, 3), 255, np.uint8)
        line_h = int(size * 1.38)
        max_lines = max(1, height // line_h)
        lines = self.text.wrap(caption, size, width)
        consumed = 0
        starts = []
        for line in lines:  # character offset of each line in the caption
            at = caption.find(line, consumed)
            at = consumed if at < 0 else at
            starts.append(at)
            consumed = at + len(line)
        # keep the lines around the spoken position visible
        current = max([i for i, s in enumerate(starts) if s <= spoken] or [0])
        first = max(
            0, min(current - max_lines + 1 + (1 if max_lines > 1 else 0), len(lines) - max_lines)
        )
        first = max(0, min(first, current))
        shown = lines[first : first + max_lines]
        if first + max_lines < len(lines) and shown:
            shown[-1] = shown[-1].rstrip() + ' …'
        grey = (175, 168, 160)
        for row, line in enumerate(shown):
            y = row * line_h
            begin = starts[first + row]
            done = int(np.clip(spoken - begin, 0, len(line)))
            x = 0
            if done:
                x += self.text.draw(patch, line[:done], (x, y), size, INK)
            if done < len(line):
                self.text.draw(patch, line[done:], (x, y), size, grey)
        return patch
