// The WebRTC side: an offer the edge accepts, sent only once ICE gathering is complete (the edge does not trickle).

import { postOffer, SessionApi } from './api.js';

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

/**
 * Opens a session: recvonly video, audio (recvonly, or sendrecv with the microphone for echo mode)
 * and the "stats" data channel, which must exist before the offer so that it is negotiated with it.
 * Returns {pc, channel, stream, session}.
 */
export async function openSession({ avatar, apiKey, microphone = null }) {
  const pc = new RTCPeerConnection();
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
    const answer = await postOffer(pc.localDescription.sdp, avatar, apiKey);
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    return { pc, channel, stream, session: new SessionApi(answer.session_id, answer.token) };
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
