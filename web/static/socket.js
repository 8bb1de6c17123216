// The WebSocket: a single-use ticket instead of a token in the URL,
// resume=1 for gap-free sync, reconnects with exponential backoff and
// jitter (1 s to 30 s), and an outbox of frames that are resent with the
// same client_id until the server acknowledges them.

const minDelay = 1000;
const maxDelay = 30000;
const pingEvery = 25000;
const silentLimit = 65000;

// Until a hello tells the server's limits, frames go out at a cautious
// pace; frames are only sent after the hello, so this matters only for a
// server that does not say.
const cautiousFrames = [2, 2];
const cautiousMessages = [1, 1];

/** Bucket is a token bucket that paces frames under the server's limits. */
class Bucket {
  constructor(rate, burst) {
    this.rate = rate;
    this.burst = burst;
    this.tokens = burst;
    this.at = performance.now();
  }

  /**
   * pace changes the rate and burst; full starts over with a full bucket,
   * otherwise the tokens held are kept (at most the new burst).
   */
  pace(rate, burst, full) {
    this.refill();
    this.rate = rate;
    this.burst = burst;
    this.tokens = full ? burst : Math.min(this.tokens, burst);
  }

  refill() {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
  }

  /** wait is how many ms until one token is there (0: now). */
  wait() {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.rate) * 1000);
  }

  take() {
    this.refill();
    this.tokens -= 1;
  }
}

/**
 * under is the pace kept below a server limit, or null when the limit is
 * missing or nonsense: 90 % of its rate and one less than its burst, so
 * that clock drift, and frames the network delivers bunched up, stay
 * within it.
 */
function under(rate, burst) {
  rate = Number(rate);
  burst = Math.floor(Number(burst));
  if (!(rate > 0) || !Number.isFinite(rate) || !(burst >= 1) || !Number.isFinite(burst)) return null;
  return [rate * 0.9, Math.max(1, burst - 1)];
}

const messageTypes = new Set(['text', 'file', 'edit', 'delete']);

/**
 * Socket keeps one WebSocket open for the signed-in user.
 * options: ticket() → Promise<string> (rejects with {status} on failure),
 * onOpen() (send syncs there), onFrame(frame), onState(state),
 * onFailed(clientId, frame, error) for an outbox frame the server refused.
 */
export class Socket {
  constructor(options) {
    this.options = options;
    this.ws = null;
    this.state = 'idle';
    this.attempt = 0;
    this.timer = 0;
    this.stopped = true;
    this.outbox = new Map(); // client_id → {frame, inFlight}
    this.queue = [];
    this.pumpTimer = 0;
    // frames: this connection's frames (the server counts per connection);
    // messages: messages, edits and deletes (the server counts per user).
    this.frames = new Bucket(...cautiousFrames);
    this.messages = new Bucket(...cautiousMessages);
    this.paced = false; // a hello has set the message pace
    this.lastHeard = 0;
    this.lastSent = 0;
    this.heartbeat = 0;
    this.serial = 0;
    this.onOnline = () => this.reconnectNow();
    this.onVisible = () => { if (document.visibilityState === 'visible' && this.state === 'reconnecting') this.reconnectNow(); };
  }

  /** start connects and keeps reconnecting until stop. */
  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    document.addEventListener('visibilitychange', this.onVisible);
    this.heartbeat = setInterval(() => this.checkAlive(), 5000);
    this.connect();
  }

  /** stop closes the connection for good (logout). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.pumpTimer);
    clearInterval(this.heartbeat);
    window.removeEventListener('online', this.onOnline);
    document.removeEventListener('visibilitychange', this.onVisible);
    this.queue = [];
    this.outbox.clear();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try { ws.close(1000, 'logout'); } catch { /* already closed */ }
    }
    this.setState('idle');
  }

  setState(value) {
    if (this.state === value) return;
    this.state = value;
    this.options.onState(value);
  }

  /** isOpen says whether frames go out now. */
  isOpen() {
    return this.state === 'open';
  }

  async connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    const serial = ++this.serial;
    this.setState(this.attempt === 0 && this.state === 'idle' ? 'connecting' : 'reconnecting');
    let ticket;
    try {
      ticket = await this.options.ticket();
    } catch (err) {
      if (serial !== this.serial || this.stopped) return;
      if (err && err.status === 401) return; // the session is over; the app signs out
      this.scheduleReconnect();
      return;
    }
    if (serial !== this.serial || this.stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/ws?ticket=${encodeURIComponent(ticket)}&resume=1`);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onmessage = (event) => this.receive(ws, event);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.queue = [];
      for (const entry of this.outbox.values()) entry.inFlight = false;
      if (!this.stopped) this.scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  scheduleReconnect() {
    if (this.stopped) return;
    this.setState('reconnecting');
    const base = Math.min(maxDelay, minDelay * 2 ** this.attempt);
    const delay = Math.min(maxDelay, base * (0.75 + Math.random() * 0.5));
    this.attempt = Math.min(this.attempt + 1, 10);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** reconnectNow skips the backoff wait (the network came back, or the user asked). */
  reconnectNow() {
    if (this.stopped || this.state === 'open') return;
    if (this.ws && this.ws.readyState === WebSocket.CONNECTING) return;
    this.attempt = 0;
    this.connect();
  }

  receive(ws, event) {
    if (this.ws !== ws) return;
    this.lastHeard = Date.now();
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    if (frame.type === 'hello') {
      this.attempt = 0;
      this.applyLimits(frame.limits);
      this.setState('open');
      this.options.onFrame(frame);
      this.options.onOpen();
      this.flushOutbox();
      return;
    }
    if (frame.type === 'ack' && frame.client_id) {
      this.outbox.delete(frame.client_id);
    } else if (frame.type === 'error' && frame.client_id && this.outbox.has(frame.client_id)) {
      const entry = this.outbox.get(frame.client_id);
      if (frame.code === 'too_many' || frame.code === 'unavailable' || frame.code === 'internal') {
        entry.inFlight = false;
        const wait = Math.max(1000, (Number(frame.retry_after) || 1) * 1000);
        setTimeout(() => { if (this.outbox.get(frame.client_id) === entry && !entry.inFlight) this.sendEntry(frame.client_id, entry); }, wait);
        return;
      }
      this.outbox.delete(frame.client_id);
      this.options.onFailed(frame.client_id, entry.frame, frame);
      return;
    }
    this.options.onFrame(frame);
  }

  /**
   * applyLimits paces frames under the limits a hello announced. Each
   * connection starts with the server's full frame bucket; the message
   * bucket is the user's and outlives a reconnect, so after the first
   * hello the tokens already spent stay spent.
   */
  applyLimits(limits) {
    if (!limits || typeof limits !== 'object') return;
    const frames = under(limits.frames_per_second, limits.frames_burst);
    if (frames) this.frames.pace(...frames, true);
    const messages = under(limits.messages_per_second, limits.messages_burst);
    if (messages) {
      this.messages.pace(...messages, !this.paced);
      this.paced = true;
    }
  }

  /** send sends a frame now if connected (typing, read, sync); otherwise it is dropped. */
  send(frame) {
    if (!this.isOpen()) return false;
    // A typing or read frame still waiting is out of date once a newer one
    // for the same chat comes; under a low frame limit only the newest goes.
    if (frame.type === 'typing' || frame.type === 'read') {
      this.queue = this.queue.filter((q) => q.type !== frame.type || q.chat_name !== frame.chat_name);
    }
    this.queue.push(frame);
    this.pump();
    return true;
  }

  /** enqueue sends a frame with a client_id until it is acknowledged, across reconnects. */
  enqueue(frame) {
    const entry = { frame, inFlight: false };
    this.outbox.set(frame.client_id, entry);
    if (this.isOpen()) this.sendEntry(frame.client_id, entry);
  }

  /** discard stops resending a frame. */
  discard(clientId) {
    this.outbox.delete(clientId);
  }

  /** pendingFrames lists the unacknowledged frames, oldest first. */
  pendingFrames() {
    return [...this.outbox.values()].map((e) => e.frame);
  }

  sendEntry(clientId, entry) {
    if (!this.isOpen() || entry.inFlight) return;
    entry.inFlight = true;
    this.queue.push(entry.frame);
    this.pump();
  }

  flushOutbox() {
    for (const [clientId, entry] of this.outbox) {
      entry.inFlight = false;
      this.sendEntry(clientId, entry);
    }
  }

  pump() {
    clearTimeout(this.pumpTimer);
    while (this.queue.length && this.ws && this.ws.readyState === WebSocket.OPEN) {
      const frame = this.queue[0];
      const wait = Math.max(this.frames.wait(), messageTypes.has(frame.type) ? this.messages.wait() : 0);
      if (wait > 0) {
        this.pumpTimer = setTimeout(() => this.pump(), wait);
        return;
      }
      this.queue.shift();
      this.frames.take();
      if (messageTypes.has(frame.type)) this.messages.take();
      this.ws.send(JSON.stringify(frame));
      this.lastSent = Date.now();
    }
  }

  // A connection that went quiet (a sleeping laptop, a dead network) is
  // noticed by our own pings and replaced.
  checkAlive() {
    if (!this.isOpen() || !this.ws) return;
    const now = Date.now();
    if (now - this.lastHeard > silentLimit) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = null;
      try { ws.close(); } catch { /* gone */ }
      this.queue = [];
      for (const entry of this.outbox.values()) entry.inFlight = false;
      this.scheduleReconnect();
      return;
    }
    if (now - this.lastSent > pingEvery) this.send({ type: 'ping' });
  }
}
