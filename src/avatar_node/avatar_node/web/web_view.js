// agechat browser view: one WebSocket (/ws) brings JSON events and JPEG avatar frames;
// typed chat goes to POST /api/chat. No framework, no build step.
'use strict';

const AGE_NAMES = { child: '어린이 (5–19)', adult: '성인 (20–59)', senior: '어르신 (60–89)' };
const EMOTION_NAMES = {
  angry: '화남', disgust: '혐오', fear: '두려움', happy: '기쁨',
  sad: '슬픔', surprise: '놀람', neutral: '무표정',
};
const $ = (id) => document.getElementById(id);
let frameUrl = null;
let retryMs = 250;

function percent(x) { return `${Math.round(100 * x)}%`; }

function showFrame(blob) {
  const img = $('avatar');
  const url = URL.createObjectURL(blob);
  img.onload = () => {
    img.dataset.frames = String(Number(img.dataset.frames) + 1);
    if (frameUrl) URL.revokeObjectURL(frameUrl);
    frameUrl = url;
  };
  img.src = url;
}

const handlers = {
  caption(e) { $('caption').textContent = e.text; },
  heard(e) { $('heard').textContent = e.text || '(들리지 않음)'; $('partial').textContent = '–'; },
  partial(e) { $('partial').textContent = e.text; },
  age(e) {
    $('age').textContent = `${AGE_NAMES[e.group] || e.group} · ${percent(e.confidence)}`
      + (e.unsure ? ' (불확실)' : '');
    $('age').dataset.group = e.group;
  },
  emotion(e) {
    $('emotion').textContent = e.face
      ? `${EMOTION_NAMES[e.label] || e.label} · ${percent(e.confidence)}` : '얼굴 없음';
    $('emotion').dataset.label = e.face ? e.label : '';
  },
  speaking(e) {
    const badge = $('speaking');
    const cut = !e.speaking && Boolean(e.interrupted);  // the user spoke over the reply
    badge.textContent = e.speaking ? '말하는 중' : (cut ? '끊김' : '대기');
    badge.title = cut ? 'interrupted: the user spoke over the reply' : '';
    badge.className = `badge ${e.speaking ? 'on' : (cut ? 'cut' : 'off')}`;
    badge.dataset.speaking = String(e.speaking);
    badge.dataset.interrupted = String(cut);
  },
  chat(e) { /* the page that sent it shows the answer of its own request */ },
  status(e) { $('connection').title = e.text; },
};

function handle(event) {
  if (event.type === 'hello') {
    for (const [kind, value] of Object.entries(event.state)) {
      if (kind !== 'chat' && handlers[kind]) handlers[kind](value);
    }
    return;
  }
  if (handlers[event.type]) handlers[event.type](event);
}

function setConnection(state, text) {
  const badge = $('connection');
  badge.dataset.state = state;
  badge.textContent = text;
  badge.className = `badge ${state === 'open' ? '' : 'off'}`;
}

function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  ws.binaryType = 'blob';
  ws.onopen = () => { retryMs = 250; setConnection('open', '연결됨'); };
  ws.onmessage = (message) => {
    if (typeof message.data === 'string') handle(JSON.parse(message.data));
    else showFrame(message.data);
  };
  ws.onclose = () => {
    setConnection('closed', '연결 끊김 — 다시 연결 중…');
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  };
}

function addChat(cls, text, meta) {
  const li = document.createElement('li');
  li.className = cls;
  li.textContent = text;
  if (meta) {
    const span = document.createElement('span');
    span.className = 'meta';
    span.textContent = meta;
    li.appendChild(span);
  }
  $('chat-log').appendChild(li);
  li.scrollIntoView({ block: 'nearest' });
  return li;
}

async function sendChat(submit) {
  submit.preventDefault();
  const input = $('chat-input');
  const text = input.value.trim();
  if (!text) return;
  input.value = '';
  addChat('chat-you', text);
  const button = $('chat-send');
  button.disabled = true;
  try {
    const response = await fetch('/api/chat', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ text, age_group: $('age-choice').value }),
    });
    const answer = await response.json();
    if (answer.success) {
      addChat('chat-reply', answer.reply_text,
        `${AGE_NAMES[answer.age_group] || answer.age_group} · ${EMOTION_NAMES[answer.emotion] || answer.emotion}`);
    } else {
      addChat('chat-error', `답을 받지 못했습니다: ${answer.error}`);
    }
  } catch (error) {
    addChat('chat-error', `답을 받지 못했습니다: ${error}`);
  } finally {
    button.disabled = false;
    input.focus();
  }
}

$('chat-form').addEventListener('submit', sendChat);
connect();
