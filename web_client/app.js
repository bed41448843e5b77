// The demo page: connect to an avatar, make it speak (text, a file or the microphone), watch the latency overlay.
// window.lipstream exposes the live peer connection and the actions, for scripts and tests.

import { ApiError, listAvatars, listVoices } from './api.js';
import { ReceiverStats, SpeechLatency } from './metrics.js';
import { Overlay } from './overlay.js';
import { microphoneError, openSession } from './rtc.js';
import { voiceOptions } from './voices.js';

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'), message: $('message'), stage: $('stage'), video: $('video'),
  unmute: $('unmute'), avatar: $('avatar'), apiKeyField: $('api-key-field'), apiKey: $('api-key'),
  connect: $('connect'), overlayToggle: $('overlay-toggle'), dropzone: $('dropzone'), file: $('speech-file'),
  mic: $('mic'), interrupt: $('interrupt'), events: $('events'),
  sayForm: $('say-form'), sayText: $('say-text'), voice: $('voice'), say: $('say'), sayStatus: $('say-status'),
};
const overlay = new Overlay($('overlay'), $('sparkline'));
const receiver = new ReceiverStats();
const MAX_EVENTS = 30;

let live = null; // {pc, channel, stream, session, avatar, timer, latency}
let microphone = null; // the microphone's MediaStream while echo mode is on
let lastBrowser = null;
let canSay = false; // the server's default text-to-speech engine can speak
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
  ui.say.disabled = !connected || !canSay;
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
      const why = current.iceErrors.length ? current.iceErrors.join('; ') : 'the network or a firewall blocks WebRTC media';
      disconnect(`the connection failed: ${why}`);
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

function showLatency(estimate) {
  if (!estimate) return;
  const playerMs = (lastBrowser?.jitterMs ?? 0) + (lastBrowser?.decodeMs ?? 0);
  overlay.showSpeechLatency(estimate, playerMs);
  const queued = estimate.queuedMs > 0 ? `, after ${(estimate.queuedMs / 1000).toFixed(1)} s queued` : '';
  log(`speech → lips ≈ ${Math.round(estimate.requestMs + estimate.leadMs + playerMs)} ms${queued}`);
}

function onServerMessage(current, message) {
  switch (message.type) {
    case 'stats':
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
      if (message.interrupted) log(`stopped utterance ${message.utterance} after ${(message.played_ms / 1000).toFixed(1)} s`);
      else log(`finished utterance ${message.utterance}`);
      break;
    case 'interrupted':
      setSpeaking(false);
      log(`interrupted utterance ${message.utterance}`);
      break;
    case 'tts_error':
      showMessage(`the speech engine stopped: ${message.message}`);
      log(`utterance ${message.utterance}: ${message.engine} stopped`);
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
    if (live !== current) return;
    clearMessage();
    log(`queued ${reply.seconds.toFixed(1)} s of speech as utterance ${reply.utterance}`);
    if (reply.warning) showMessage(reply.warning, 'info');
    showLatency(current.latency.accepted(reply.utterance, performance.now() - sent));
  } catch (error) {
    showMessage(describe(error));
  }
}

async function say(text = ui.sayText.value, voice = ui.voice.value) {
  if (!live) {
    showMessage('connect first, then type what to say', 'info');
    return;
  }
  if (!text.trim()) {
    showMessage('type some text to say', 'info');
    return;
  }
  const current = live;
  const sent = performance.now();
  ui.say.disabled = true;
  try {
    const reply = await current.session.say(text, voice);
    if (live !== current) return;
    clearMessage();
    log(`saying utterance ${reply.utterance} in ${reply.voice} (${reply.engine})`);
    if (reply.warning) showMessage(reply.warning, 'info');
    showLatency(current.latency.accepted(reply.utterance, performance.now() - sent));
  } catch (error) {
    showMessage(describe(error));
  } finally {
    ui.say.disabled = !live || !canSay;
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

async function loadVoices() {
  let listing;
  try {
    listing = await listVoices();
  } catch (error) {
    ui.sayStatus.textContent = `cannot list the voices: ${describe(error)}`;
    return;
  }
  const engine = listing.engines[listing.default_engine];
  canSay = Boolean(engine?.available);
  if (!canSay) {
    ui.voice.replaceChildren(new Option('unavailable'));
    ui.sayStatus.textContent = `Text to speech is off on this server: ${engine?.reason ?? 'no engine'}.`;
    ui.sayStatus.dataset.kind = 'error';
    setState(document.body.dataset.state, ui.status.textContent);
    return;
  }
  ui.voice.replaceChildren(...voiceOptions(engine));
  ui.voice.disabled = false;
  ui.sayStatus.textContent = `${listing.default_engine}: the avatar speaks the text as it is synthesized.`;
  setState(document.body.dataset.state, ui.status.textContent);
}

function wirePage() {
  $('session-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (live) disconnect();
    else connect();
  });
  ui.interrupt.addEventListener('click', interrupt);
  ui.sayForm.addEventListener('submit', (event) => {
    event.preventDefault();
    say();
  });
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
  get session() { return live?.session ?? null; }, // its id, URL and token header, to control it from outside
  connect, disconnect, speak, say, interrupt,
};

wirePage();
setOverlay(!window.matchMedia('(max-width: 600px)').matches); // on a phone the face comes first
loadAvatars();
loadVoices();
