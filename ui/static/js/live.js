// The live event socket: reconnects by itself with backoff and resumes after the last
// sequence number it saw (protocol in docs/events.md), so no card stays "ringing".

const PING_EVERY_MS = 15000;
const SILENCE_LIMIT_MS = 35000;
const BACKOFF_MAX_MS = 15000;

export class LiveSocket {
  constructor({ onEvent, onReset, onStatus, onUnauthorized }) {
    this.onEvent = onEvent;
    this.onReset = onReset;
    this.onStatus = onStatus || (() => {});
    this.onUnauthorized = onUnauthorized || (() => {});
    this.lastSeq = null; // null until the first hello: a fresh page starts from a snapshot
    this.boot = null;
    this.helloSeq = 0;
    this.attempt = 0;
    this.ws = null;
    this.stopped = false;
    this.lastHeard = Date.now();
    this.timer = null;
  }

  start() {
    this.connect();
    this.heartbeat = setInterval(() => this.checkAlive(), PING_EVERY_MS);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
  }

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    this.onStatus('connecting');
    ws.addEventListener('message', (msg) => this.receive(ws, msg));
    ws.addEventListener('close', (ev) => this.closed(ws, ev));
  }

  send(ws, value) {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(value));
  }

  receive(ws, msg) {
    this.lastHeard = Date.now();
    let data;
    try {
      data = JSON.parse(msg.data);
    } catch {
      return;
    }
    if (data.type === 'hello') {
      this.helloSeq = data.seq;
      const fresh = this.lastSeq === null || (this.boot !== null && this.boot !== data.boot);
      if (fresh) {
        this.send(ws, { type: 'start' });
        this.lastSeq = data.seq;
        this.boot = data.boot;
        this.onReset();
      } else {
        this.send(ws, { type: 'resume', after: this.lastSeq, boot: this.boot });
      }
      this.attempt = 0;
      this.onStatus('online');
    } else if (data.type === 'reset') {
      this.lastSeq = this.helloSeq;
      this.onReset();
    } else if (typeof data.seq === 'number' && data.seq > 0) {
      if (data.seq <= this.lastSeq) return; // already applied
      this.lastSeq = data.seq;
      this.onEvent(data);
    }
  }

  closed(ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    if (this.stopped) return;
    if (ev.code === 4401) {
      this.onStatus('offline');
      this.onUnauthorized();
      return;
    }
    this.onStatus('offline');
    const delay = Math.min(BACKOFF_MAX_MS, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt = Math.min(this.attempt + 1, 10);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  // A connection that went silent (sleeping laptop, dead NAT) is closed and replaced.
  checkAlive() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastHeard > SILENCE_LIMIT_MS) {
      ws.close(4000);
      return;
    }
    this.send(ws, { type: 'ping' });
  }

  // Tests and the reconnect button: drop the socket as a network failure would.
  reconnectNow() {
    if (this.ws) this.ws.close(4000);
  }
}
