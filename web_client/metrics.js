// The receiving side's numbers from pc.getStats(): cumulative counters become per-interval rates and delays.

function selectedPair(report) {
  let pair = null;
  report.forEach((entry) => {
    if (entry.type === 'transport' && entry.selectedCandidatePairId) pair = report.get(entry.selectedCandidatePairId);
  });
  if (pair) return pair;
  report.forEach((entry) => {
    if (!pair && entry.type === 'candidate-pair' && entry.nominated && entry.state === 'succeeded') pair = entry;
  });
  return pair;
}

function inboundVideo(report) {
  let video = null;
  report.forEach((entry) => {
    if (entry.type === 'inbound-rtp' && entry.kind === 'video') video = entry;
  });
  return video;
}

// Delay per item over the last interval, or the running average when nothing new came in.
function perItemMs(now, before, total, count) {
  const items = now[count] - (before?.[count] ?? 0);
  if (items > 0) return ((now[total] - (before?.[total] ?? 0)) / items) * 1000;
  return now[count] > 0 ? (now[total] / now[count]) * 1000 : null;
}

export class ReceiverStats {
  #previous = null;

  reset() {
    this.#previous = null;
  }

  /** One sample: {codec, width, height, fps, framesDecoded, framesDropped, jitterMs, decodeMs, rttMs, bitrateKbps}. */
  async sample(pc) {
    const report = await pc.getStats();
    const video = inboundVideo(report);
    if (!video) return null;
    const before = this.#previous;
    this.#previous = video;
    const seconds = before ? (video.timestamp - before.timestamp) / 1000 : 0;
    const pair = selectedPair(report);
    const codec = video.codecId ? report.get(video.codecId) : null;
    return {
      codec: codec ? codec.mimeType.replace(/^video\//i, '') : null,
      width: video.frameWidth ?? null,
      height: video.frameHeight ?? null,
      fps: video.framesPerSecond
        ?? (seconds > 0 ? (video.framesDecoded - before.framesDecoded) / seconds : null),
      framesDecoded: video.framesDecoded ?? 0,
      framesDropped: video.framesDropped ?? 0,
      jitterMs: perItemMs(video, before, 'jitterBufferDelay', 'jitterBufferEmittedCount'),
      decodeMs: perItemMs(video, before, 'totalDecodeTime', 'framesDecoded'),
      rttMs: pair?.currentRoundTripTime != null ? pair.currentRoundTripTime * 1000 : null,
      bitrateKbps: seconds > 0 ? ((video.bytesReceived - before.bytesReceived) * 8) / seconds / 1000 : null,
    };
  }
}

const PENDING_LIMIT = 16; // halves whose other half never comes (interrupted, live speech) are forgotten

function remember(map, key, value) {
  map.set(key, value);
  if (map.size > PENDING_LIMIT) map.delete(map.keys().next().value);
}

/**
 * Speech-to-lips for an upload: time to upload, then the server's lead (frames between the upload being
 * accepted and its first speaking frame), then the browser's jitter buffer and decode of that frame.
 * The HTTP reply and the speech_start event can arrive in either order.
 */
export class SpeechLatency {
  #accepted = new Map();
  #started = new Map();

  accepted(utterance, uploadMs, serverFrame) {
    remember(this.#accepted, utterance, { uploadMs, serverFrame });
    return this.#resolve(utterance);
  }

  started(event) {
    remember(this.#started, event.utterance, event);
    return this.#resolve(event.utterance);
  }

  #resolve(utterance) {
    const accepted = this.#accepted.get(utterance);
    const start = this.#started.get(utterance);
    if (!accepted || !start) return null;
    this.#accepted.delete(utterance);
    this.#started.delete(utterance);
    const msPerFrame = start.frame > 0 ? start.pts_ms / start.frame : 40;
    return { uploadMs: accepted.uploadMs, leadMs: Math.max(0, (start.frame - accepted.serverFrame) * msPerFrame) };
  }
}
