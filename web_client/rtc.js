// The WebRTC side: an offer the edge accepts, sent only once ICE gathering is complete (the edge does not trickle).

import { ApiError, iceServers, postOffer, SessionApi } from './api.js';

const GATHERING_TIMEOUT_MS = 5000;

function gatheringComplete(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    // Past the timeout, the candidates found so far are sent (an unreachable STUN server must not hang Connect).
    const timer = setTimeout(done, GATHERING_TIMEOUT_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === 'complete') done();
    }
    pc.addEventListener('icegatheringstatechange', check);
  });
}

// What a STUN/TURN server's error event means, in words a person can act on.
function describeIceError(event) {
  const server = event.url || 'a STUN/TURN server';
  if (event.errorCode === 401) {
    return `the TURN server ${server} refused its credentials (401 Unauthorized): they are wrong or have `
      + 'expired; reload the page for new ones, or check http.turn.secret against the TURN server\'s secret';
  }
  return `the STUN/TURN server ${server} failed: ${event.errorCode} ${event.errorText || ''}`.trim();
}

function hasCandidates(sdp) {
  return /^a=candidate:/m.test(sdp);
}

/**
 * Opens a session: recvonly video, audio (recvonly, or sendrecv with the microphone for echo mode)
 * and the "stats" data channel, which must exist before the offer so that it is negotiated with it.
 * The edge's STUN/TURN servers come first; `?ice=relay` in the page's address sends everything
 * through TURN (to try a TURN server). Returns {pc, channel, stream, session, iceErrors}.
 */
export async function openSession({ avatar, apiKey, microphone = null }) {
  const relay = new URLSearchParams(window.location.search).get('ice') === 'relay';
  const pc = new RTCPeerConnection({
    iceServers: await iceServers(apiKey),
    iceTransportPolicy: relay ? 'relay' : 'all',
  });
  const iceErrors = [];
  pc.addEventListener('icecandidateerror', (event) => {
    const words = describeIceError(event);
    if (!iceErrors.includes(words)) iceErrors.push(words);
  });
  const stream = new MediaStream();
  pc.addEventListener('track', (event) => stream.addTrack(event.track));
  pc.addTransceiver('video', { direction: 'recvonly' });
  if (microphone) {
    pc.addTransceiver(microphone, { direction: 'sendrecv' });
  } else {
    pc.addTransceiver('audio', { direction: 'recvonly' });
  }
  const channel = pc.createDataChannel('stats');
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
    if (!hasCandidates(pc.localDescription.sdp)) {
      const why = iceErrors.join('; ') || (relay ? 'no TURN server is configured on the edge' : 'no network');
      throw new ApiError(`no way to reach the server: ${why}`);
    }
    const answer = await postOffer(pc.localDescription.sdp, avatar, apiKey);
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    const session = new SessionApi(answer.session_id, answer.token, answer.urls?.session);
    return { pc, channel, stream, session, iceErrors };
  } catch (error) {
    pc.close();
    throw error;
  }
}

// Why the browser refused the microphone, in words a person can act on.
export function microphoneError(error) {
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
