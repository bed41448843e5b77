// The demo page: connect to an avatar, make it speak (file or microphone), watch the latency overlay.
// window.lipstream exposes the live peer connection and the actions, for scripts and tests.

import { ApiError, listAvatars } from './api.js';
import { ReceiverStats, SpeechLatency } from './metrics.js';
import { Overlay } from './overlay.js';
import { openSession } from './rtc.js';

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'), message: $('message'), stage: $('stage'), video: $('video'),
  unmute: $('unmute'), avatar: $('avatar'), apiKeyField: $('api-key-field'), apiKey: $('api-key'),
  connect: $('connect'), overlayToggle: $('overlay-toggle'), dropzone: $('dropzone'), file: $('speech-file'),
  mic: $('mic'), interrupt: $('interrupt'), events: $('events'),
};
const overlay = new Overlay($('overlay'), $('sparkline'));
const receiver = new ReceiverStats();
const MAX_EVENTS = 30;

let live = null; // {pc, channel, stream, session, avatar, timer, latency}
let microphone = null; // the microphone's MediaStream while echo mode is on
let lastServer = null; // {frame, fps, at}: to place an upload on the server's frame clock
let lastBrowser = null;
let retryTimer = null;

// -- words on the page ----------------------------------------------------------------------
function describe(error) {
  return error instanceof ApiError ? error.message : `connection failed: ${error.message || error}`;
}

function showMessage(text, kind = 'error') {
  ui.message.textContent = text;
  ui.message.dataset.kind = kind;
  ui.message.hidden = false;
}

function clearMessage() {
  ui.message.hidden = true;
  ui.message.textContent = '';
}

function setState(state, words) {
  document.body.dataset.state = state;
  ui.status.textContent = words;
  ui.status.dataset.state = state;
  const connected = live !== null;
  ui.connect.textContent = connected ? 'Disconnect' : 'Connect';
  ui.connect.classList.toggle('primary', !connected);
  ui.interrupt.disabled = !connected;
  ui.avatar.disabled = connected || state === 'connecting';
}

function setSpeaking(on) {
  if ((document.body.dataset.speaking === 'true') === on) return;
  document.body.dataset.speaking = String(on);
  if (live?.pc.connectionState === 'connected') setState('connected', on ? 'speaking' : `connected · ${live.avatar}`);
}

function log(text) {
  const item = document.createElement('li');
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString([], { hour12: false });
  item.append(time, ` ${text}`);
  ui.events.prepend(item);
  while (ui.events.children.length > MAX_EVENTS) ui.events.lastChild.remove();
}

function microphoneError(error) {
  switch (error?.name) {
    case 'NotAllowedError':
      return 'microphone blocked by the browser: allow it for this site (address bar icon) and try again';
    case 'NotFoundError':
      return 'no microphone found on this device';
    case 'NotReadableError':
      return 'the microphone is busy in another program';
    case 'SecurityError':
      return 'the microphone needs a secure page: open this over HTTPS or on localhost';
    default:
      return `cannot open the microphone: ${error?.message || error}`;
  }
}

// -- connection -------------------------------------------------------------------------------
function play() {
  ui.video.play().catch(() => {
    // Autoplay with sound refused: play muted and let a tap turn the sound on.
    ui.video.muted = true;
    ui.unmute.hidden = false;
    ui.video.play().catch(() => {});
  });
}

function holdRetry(seconds) {
  clearInterval(retryTimer);
  let left = seconds;
  ui.connect.disabled = true;
  ui.connect.textContent = `Retry in ${left} s`;
  retryTimer = setInterval(() => {
    left -= 1;
    if (left > 0) {
      ui.connect.textContent = `Retry in ${left} s`;
      return;
    }
    clearInterval(retryTimer);
    ui.connect.disabled = false;
    ui.connect.textContent = 'Connect';
  }, 1000);
}

async function connect() {
  if (live) return;
  clearMessage();
  setState('connecting', 'connecting…');
  ui.connect.disabled = true;
  const avatar = ui.avatar.value;
  let opened;
  try {
    opened = await openSession({
      avatar, apiKey: ui.apiKey.value.trim(), microphone: microphone?.getAudioTracks()[0] ?? null,
    });
  } catch (error) {
    setState('error', 'not connected');
    showMessage(describe(error));
    if (error.status === 401 || error.status === 403) ui.apiKeyField.hidden = false;
    if (error.retryAfter) holdRetry(error.retryAfter);
    else ui.connect.disabled = false;
    return;
  }
  live = { ...opened, avatar, timer: null, latency: new SpeechLatency() };
  ui.connect.disabled = false;
  attach(live);
  log(`session ${live.session.id.slice(0, 8)} with avatar “${avatar}”${microphone ? ' (echo mode)' : ''}`);
}

function attach(current) {
  const { pc, channel, stream } = current;
  ui.video.srcObject = stream;
  play();
  const onConnectionState = () => {
    if (live !== current) return;
    const state = pc.connectionState;
    if (state === 'connected') {
      setState('connected', `connected · ${current.avatar}`);
      if (microphone) showMessage('echo mode: the avatar repeats what you say', 'info');
    } else if (state === 'disconnected') {
      setState('connecting', 'connection interrupted, waiting…');
    } else if (state === 'failed') {
      disconnect('the connection failed: the network or a firewall blocks WebRTC media');
    } else {
      setState('connecting', 'connecting…');
    }
  };
  pc.addEventListener('connectionstatechange', onConnectionState);
  onConnectionState();
  channel.addEventListener('message', (event) => {
    if (live === current) onServerMessage(current, JSON.parse(event.data));
  });
  channel.addEventListener('close', () => {
    if (live === current) disconnect('the server ended the session');
  });
  current.timer = setInterval(() => sampleBrowser(current), 1000);
}

async function disconnect(reason = null) {
  const current = live;
  if (!current) return;
  live = null;
  clearInterval(current.timer);
  ui.video.srcObject = null;
  setSpeaking(false);
  overlay.clear();
  receiver.reset();
  lastServer = null;
  lastBrowser = null;
  setState(reason ? 'error' : 'idle', 'not connected');
  if (reason) showMessage(reason);
  else clearMessage();
  log(reason ? `disconnected: ${reason}` : 'disconnected');
  // The server is told first, so it does not see a dropped connection; a session it already ended is fine.
  await current.session.close().catch(() => {});
  current.pc.close();
}

// -- live numbers -------------------------------------------------------------------------------
async function sampleBrowser(current) {
  const sample = await receiver.sample(current.pc).catch(() => null);
  if (!sample || live !== current) return;
  lastBrowser = sample;
  overlay.showBrowser(sample);
}

function serverFrameNow() {
  if (!lastServer) return null;
  return lastServer.frame + ((performance.now() - lastServer.at) / 1000) * lastServer.fps;
}

function showLatency(estimate) {
  if (!estimate) return;
  const playerMs = (lastBrowser?.jitterMs ?? 0) + (lastBrowser?.decodeMs ?? 0);
  overlay.showSpeechLatency(estimate, playerMs);
  log(`speech → lips ≈ ${Math.round(estimate.uploadMs + estimate.leadMs + playerMs)} ms`);
}

function onServerMessage(current, message) {
  switch (message.type) {
    case 'stats':
      lastServer = { frame: message.frame, fps: message.stats.fps || 25, at: performance.now() };
      overlay.showServer(message);
      setSpeaking(message.speaking);
      break;
    case 'speech_start':
      setSpeaking(true);
      log(`speaking utterance ${message.utterance} (from ${(message.pts_ms / 1000).toFixed(2)} s)`);
      showLatency(current.latency.started(message));
      break;
    case 'speech_end':
      setSpeaking(false);
      log(`finished utterance ${message.utterance}`);
      break;
    case 'interrupted':
      setSpeaking(false);
      log(`interrupted utterance ${message.utterance}`);
      break;
    default:
      break;
  }
}

// -- speech ---------------------------------------------------------------------------------------
async function speak(file) {
  if (!live) {
    showMessage('connect first, then send speech', 'info');
    return;
  }
  const current = live;
  const sent = performance.now();
  log(`uploading ${file.name || 'audio'} (${Math.max(1, Math.round(file.size / 1024))} kB)`);
  try {
    const reply = await current.session.speak(file);
    const frame = serverFrameNow();
    if (live !== current) return;
    clearMessage();
    log(`queued ${reply.seconds.toFixed(1)} s of speech as utterance ${reply.utterance}`);
    if (reply.warning) showMessage(reply.warning, 'info');
    if (frame !== null) showLatency(current.latency.accepted(reply.utterance, performance.now() - sent, frame));
  } catch (error) {
    showMessage(describe(error));
  }
}

async function interrupt() {
  if (!live) return;
  try {
    const { dropped_utterances: dropped } = await live.session.interrupt();
    log(`interrupt: dropped ${dropped} utterance${dropped === 1 ? '' : 's'}`);
  } catch (error) {
    showMessage(describe(error));
  }
}

async function reconnect() {
  if (!live) return;
  await disconnect();
  await connect();
}

async function toggleMicrophone() {
  if (microphone) {
    microphone.getTracks().forEach((track) => track.stop());
    microphone = null;
    ui.mic.setAttribute('aria-pressed', 'false');
    clearMessage();
    await reconnect();
    return;
  }
  try {
    if (!navigator.mediaDevices?.getUserMedia) throw new DOMException('insecure context', 'SecurityError');
    microphone = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (error) {
    showMessage(microphoneError(error));
    log('microphone refused');
    return;
  }
  ui.mic.setAttribute('aria-pressed', 'true');
  if (live) await reconnect();
  else showMessage('echo mode on: press Connect and speak', 'info');
}

// -- page wiring ------------------------------------------------------------------------------------
function setOverlay(on) {
  overlay.visible = on;
  ui.overlayToggle.setAttribute('aria-pressed', String(on));
}

async function loadAvatars() {
  try {
    const { avatars, default: preferred } = await listAvatars();
    // A deep link (?avatar=name) is honoured even if unlisted: the server then says why it cannot be used.
    const wanted = new URLSearchParams(window.location.search).get('avatar') || preferred;
    const names = avatars.includes(wanted) ? avatars : [...avatars, wanted];
    ui.avatar.replaceChildren(...names.map((name) => new Option(name, name, false, name === wanted)));
    ui.avatar.disabled = false;
    ui.connect.disabled = false;
  } catch (error) {
    ui.avatar.replaceChildren(new Option('unavailable'));
    showMessage(`cannot list the avatars: ${describe(error)}`);
  }
}

function wirePage() {
  $('session-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (live) disconnect();
    else connect();
  });
  ui.interrupt.addEventListener('click', interrupt);
  ui.mic.addEventListener('click', toggleMicrophone);
  ui.overlayToggle.addEventListener('click', () => setOverlay(!overlay.visible));
  ui.unmute.addEventListener('click', () => {
    ui.video.muted = false;
    ui.unmute.hidden = true;
    play();
  });
  ui.file.addEventListener('change', () => {
    const [file] = ui.file.files;
    ui.file.value = ''; // the same file may be sent again
    if (file) speak(file);
  });
  // The whole page takes a dropped file (a near miss must not open the file in the tab); the zone lights up.
  document.addEventListener('dragover', (event) => {
    event.preventDefault();
    ui.dropzone.classList.add('dragging');
  });
  document.addEventListener('dragleave', (event) => {
    if (!event.relatedTarget) ui.dropzone.classList.remove('dragging');
  });
  document.addEventListener('drop', (event) => {
    event.preventDefault();
    ui.dropzone.classList.remove('dragging');
    const [file] = event.dataTransfer.files;
    if (file) speak(file);
  });
  ui.video.addEventListener('resize', () => {
    if (ui.video.videoWidth) ui.stage.style.aspectRatio = `${ui.video.videoWidth} / ${ui.video.videoHeight}`;
  });
  ui.video.addEventListener('playing', () => ui.stage.classList.add('live'));
  ui.video.addEventListener('emptied', () => ui.stage.classList.remove('live'));
  document.addEventListener('keydown', (event) => {
    const typing = event.target.closest?.('input, select, textarea');
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === 'l' || event.key === 'L') setOverlay(!overlay.visible);
  });
  window.addEventListener('pagehide', () => live?.session.close({ keepalive: true }).catch(() => {}));
}

window.lipstream = {
  get pc() { return live?.pc ?? null; },
  get sessionId() { return live?.session.id ?? null; },
  connect, disconnect, speak, interrupt,
};

wirePage();
setOverlay(!window.matchMedia('(max-width: 600px)').matches); // on a phone the face comes first
loadAvatars();
