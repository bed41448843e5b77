// The latency overlay: named numbers (data-metric) and a sparkline of the browser's per-frame delay.

const SERVER_STAGES = ['features', 'inference_queue', 'inference_compute', 'inference_rtt', 'composite'];

function format(value, digits) {
  if (value == null || Number.isNaN(value)) return '—';
  return typeof value === 'number' ? value.toFixed(digits) : String(value);
}

class Sparkline {
  constructor(canvas, capacity = 60) {
    this.canvas = canvas;
    this.capacity = capacity;
    this.values = [];
  }

  clear() {
    this.values = [];
    this.draw();
  }

  push(value) {
    this.values.push(value);
    if (this.values.length > this.capacity) this.values.shift();
    this.draw();
  }

  draw() {
    const { canvas } = this;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width) return; // hidden: drawn when shown again
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const context = canvas.getContext('2d');
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    if (this.values.length < 2) return;
    const top = Math.max(5, ...this.values) * 1.3;
    const step = width / (this.capacity - 1);
    const x = (i) => (i + this.capacity - this.values.length) * step;
    const y = (v) => height - (v / top) * (height - 4) - 2;
    context.beginPath();
    this.values.forEach((v, i) => (i ? context.lineTo(x(i), y(v)) : context.moveTo(x(i), y(v))));
    context.strokeStyle = '#7ce0c3';
    context.lineWidth = 1.5;
    context.stroke();
    context.lineTo(x(this.values.length - 1), height);
    context.lineTo(x(0), height);
    context.fillStyle = 'rgba(124, 224, 195, 0.15)';
    context.fill();
    context.fillStyle = 'rgba(255, 255, 255, 0.6)';
    context.font = '10px ui-monospace, monospace';
    context.fillText(`frame delay ${this.values.at(-1).toFixed(1)} ms`, 4, 11);
  }
}

export class Overlay {
  constructor(root, canvas) {
    this.root = root;
    this.fields = new Map([...root.querySelectorAll('[data-metric]')].map((el) => [el.dataset.metric, el]));
    this.sparkline = new Sparkline(canvas);
  }

  get visible() {
    return !this.root.hidden;
  }

  set visible(on) {
    this.root.hidden = !on;
    if (on) this.sparkline.draw();
  }

  set(name, value, digits = 1) {
    const field = this.fields.get(name);
    if (field) field.textContent = format(value, digits);
  }

  showBrowser(sample) {
    this.set('codec', sample.codec);
    this.set('resolution', sample.width ? `${sample.width}×${sample.height}` : null);
    this.set('fps', sample.fps, 1);
    this.set('frames_decoded', sample.framesDecoded, 0);
    this.set('frames_dropped', sample.framesDropped, 0);
    this.set('jitter_ms', sample.jitterMs, 1);
    this.set('decode_ms', sample.decodeMs, 2);
    this.set('rtt_ms', sample.rttMs, 1);
    this.set('bitrate_kbps', sample.bitrateKbps, 0);
    if (sample.jitterMs != null) this.sparkline.push(sample.jitterMs + (sample.decodeMs ?? 0));
  }

  showServer(message) {
    const { stats } = message;
    this.set('server_fps', stats.fps, 1);
    for (const stage of SERVER_STAGES) this.set(`server_${stage}_ms`, stats.stages_ms?.[stage], 2);
    // An idle session sends the avatar's shared idle loop and encodes nothing itself.
    const encode = stats.stages_ms?.encode;
    const encoding = encode == null ? null : `${encode.toFixed(2)} ms`;
    this.set('server_encode', message.video_source === 'shared' ? 'shared loop' : encoding);
    this.set('server_late_frames', stats.late_frames, 0);
    this.set('server_skipped_frames', stats.skipped_frames, 0);
    this.set('server_queued_s', message.queued_seconds, 1);
    // The viewer's link: what the session's video aims at, what the browser estimates it can take.
    const network = stats.network ?? {};
    this.set('server_target_kbps', network.target_kbps, 0);
    this.set('server_estimate_kbps', network.estimate_kbps, 0);
    this.set('server_keyframes_sent', network.keyframes_sent, 0);
    this.set('server_keyframe_requests', network.keyframe_requests, 0);
  }

  showSpeechLatency({ requestMs, leadMs, queuedMs }, playerMs) {
    this.set('request_ms', requestMs, 0);
    this.set('server_lead_ms', leadMs, 0);
    this.set('player_ms', playerMs, 0);
    this.set('queued_ms', queuedMs, 0);
    this.set('speech_to_lips_ms', requestMs + leadMs + playerMs, 0);
  }

  clear() {
    for (const field of this.fields.values()) field.textContent = '—';
    this.sparkline.clear();
  }
}
