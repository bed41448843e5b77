// The edge's HTTP API. Every failure becomes an ApiError whose message a person can read in the page.

export class ApiError extends Error {
  constructor(message, status = 0, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

// Sentences per status code, for the calls where the server's own text needs context.
const OFFER_ERRORS = {
  400: (detail) => `the server refused the connection offer: ${detail}`,
  401: () => 'this server needs an API key: enter it and connect again',
  403: () => 'the API key was not accepted',
};
const SESSION_ERRORS = {
  403: () => 'this page no longer holds the session',
  404: () => 'the session has ended on the server',
};
const SPEECH_ERRORS = {
  ...SESSION_ERRORS,
  413: (detail) => `that file is too big or too long: ${detail}`,
  422: (detail) => `cannot use that file as speech: ${detail}`,
  429: () => 'the speech queue is full: wait a moment or press Interrupt',
};

const SAY_ERRORS = {
  ...SESSION_ERRORS,
  400: (detail) => `cannot say that: ${detail}`,
  413: (detail) => `that text is too long: ${detail}`,
  429: () => 'the speech queue is full: wait a moment or press Interrupt',
  502: (detail) => `the speech engine failed: ${detail}`,
  503: (detail) => detail,
  504: (detail) => `the speech engine did not answer: ${detail}`,
};

async function failure(response, sentences) {
  let detail = '';
  try {
    detail = (await response.json()).error ?? '';
  } catch {
    detail = response.statusText;
  }
  if (response.headers.has('Retry-After') && (response.status === 503 || response.status === 429)) {
    // The server is full, still connecting others, late on its frames, or this address opens sessions too fast.
    const retry = Number.parseInt(response.headers.get('Retry-After') ?? '', 10) || 5;
    const why = detail.replace(/, retry in \d+ s$/, '') || 'server busy';
    return new ApiError(`${why}; retry in ${retry} s`, response.status, retry);
  }
  const sentence = sentences[response.status];
  const message = sentence ? sentence(detail) : detail || `the server answered ${response.status}`;
  return new ApiError(message, response.status);
}

async function call(url, options = {}, sentences = {}) {
  let response;
  try {
    response = await fetch(url, options);
  } catch {
    throw new ApiError('cannot reach the server: is it running?');
  }
  if (!response.ok) throw await failure(response, sentences);
  return response;
}

export async function listAvatars() {
  return (await call('/avatars')).json();
}

export async function listVoices() {
  return (await call('/voices')).json();
}

// The STUN/TURN servers to offer with, as an RTCConfiguration's iceServers (TURN credentials minted for this call).
export async function iceServers(apiKey) {
  const headers = apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
  return (await (await call('/ice-servers', { headers }, OFFER_ERRORS)).json()).iceServers;
}

export async function postOffer(sdp, avatar, apiKey) {
  const headers = { 'Content-Type': 'application/json' };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  const response = await call('/offer', {
    method: 'POST', headers, body: JSON.stringify({ sdp, type: 'offer', avatar }),
  }, OFFER_ERRORS);
  return response.json();
}

// Control calls for one session, authorised by its token, at the URL of the edge that owns it.
export class SessionApi {
  constructor(id, token, url = null) {
    this.id = id;
    this.url = url ?? `/sessions/${encodeURIComponent(id)}`;
    this.auth = { Authorization: `Bearer ${token}` };
  }

  async speak(file) {
    const headers = { ...this.auth, 'Content-Type': file.type || 'application/octet-stream' };
    const response = await call(`${this.url}/speech`, { method: 'POST', headers, body: file }, SPEECH_ERRORS);
    return response.json();
  }

  async say(text, voice) {
    const headers = { ...this.auth, 'Content-Type': 'application/json' };
    const body = JSON.stringify({ text, voice: voice || null });
    return (await call(`${this.url}/say`, { method: 'POST', headers, body }, SAY_ERRORS)).json();
  }

  async interrupt() {
    return (await call(`${this.url}/interrupt`, { method: 'POST', headers: this.auth }, SESSION_ERRORS)).json();
  }

  // keepalive lets the request finish while the page unloads.
  async close({ keepalive = false } = {}) {
    await call(this.url, { method: 'DELETE', headers: this.auth, keepalive }, SESSION_ERRORS);
  }
}
