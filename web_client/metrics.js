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
 * Speech-to-lips: the request (upload, or text until the engine's first audio), then the server's lead (from
 * when the utterance was due to its first speaking frame, as its speech_start event says), then the browser's
 * jitter buffer and decode. Time spent queued behind earlier speech is not latency: it is told apart, and a
 * queued utterance's request was over long before it was due. The HTTP reply and the speech_start event can
 * arrive in either order.
 */
export class SpeechLatency {
  #accepted = new Map();
  #started = new Map();

  accepted(utterance, requestMs) {
    remember(this.#accepted, utterance, requestMs);
    return this.#resolve(utterance);
  }

  started(event) {
    remember(this.#started, event.utterance, event);
    return this.#resolve(event.utterance);
  }

  #resolve(utterance) {
    const requestMs = this.#accepted.get(utterance);
    const start = this.#started.get(utterance);
    if (requestMs === undefined || !start) return null;
    this.#accepted.delete(utterance);
    this.#started.delete(utterance);
    const queuedMs = start.queued_ms ?? 0;
    return { requestMs: queuedMs > 0 ? 0 : requestMs, leadMs: start.lead_ms ?? 0, queuedMs };
  }
}
