// The live connection (GET /api/v1/ws, docs/DASHBOARD.md): one WebSocket for the page, one subscription
// at a time (the current view's), resumed by sequence number after a reconnect, reconnected with backoff.

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const PING_MS = 25000;

/** The wait before reconnection attempt ``attempt`` (1, 2, ...): doubling from ``min`` up to ``max``, with
 * jitter over its upper half so that many tabs do not reconnect in step. */
export function backoffDelay(attempt, min = BACKOFF_MIN_MS, max = BACKOFF_MAX_MS, random = Math.random) {
  const base = Math.min(max, min * 2 ** Math.max(0, attempt - 1));
  return Math.round(base / 2 + (random() * base) / 2);
}

export class Live {
  /**
   * @param {() => string|null} token the session's token, read at every (re)connect
   * @param {(state: string, text: string) => void} onStatus connecting | live | retrying | offline | denied
   * @param {(reason: string) => void} onDenied the server refused the token (close code 4401)
   */
  constructor({ token, onStatus = () => {}, onDenied = () => {}, backoffMinMs = BACKOFF_MIN_MS, backoffMaxMs = BACKOFF_MAX_MS }) {
    this.token = token;
    this.backoff = [backoffMinMs, backoffMaxMs];
    this.onStatus = onStatus;
    this.onDenied = onDenied;
    this.ws = null;
    this.seq = null; // the latest sequence number seen (hello, subscribed, pong, events)
    this.sub = null; // {topics, services, series, handler, onReset}
    this.attempt = 0;
    this.timer = null;
    this.pinger = null;
    this.stopped = true;
    this.principal = null;
  }

  start() {
    this.stopped = false;
    if (!this.ws) this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "page closed");
    }
    this.onStatus("offline", "offline");
  }

  /** Restart with the current token (after a login). */
  restart() {
    this.stop();
    this.seq = null;
    this.start();
  }

  connect() {
    clearTimeout(this.timer);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const token = this.token();
    const url = `${proto}//${location.host}/api/v1/ws${token ? `?token=${encodeURIComponent(token)}` : ""}`;
    this.onStatus("connecting", "connecting…");
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (exc) {
      this.retry(`cannot open the WebSocket: ${exc.message}`);
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.receive(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pinger);
      if (ev.code === 4401) {
        this.stopped = true;
        this.onStatus("denied", "signed out");
        this.onDenied(ev.reason || "the server refused the token");
        return;
      }
      if (!this.stopped) this.retry(ev.reason || `closed (${ev.code})`);
    };
  }

  retry(why) {
    this.attempt += 1;
    const delay = backoffDelay(this.attempt, ...this.backoff);
    this.onStatus("retrying", `reconnecting in ${Math.ceil(delay / 1000)} s (${why})`);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  see(seq) {
    if (typeof seq === "number" && (this.seq === null || seq > this.seq)) this.seq = seq;
  }

  receive(msg) {
    switch (msg.type) {
      case "hello":
        this.attempt = 0;
        this.principal = msg.principal || null;
        // A first connection starts from now; a reconnection resumes after the last event seen.
        if (this.seq === null) this.seq = msg.seq;
        clearInterval(this.pinger);
        this.pinger = setInterval(() => this.send({ type: "ping" }), PING_MS);
        this.sendSubscription(this.seq);
        break;
      case "subscribed":
        this.see(msg.seq);
        this.onStatus("live", "live");
        break;
      case "reset":
        // The server no longer has the events after our seq: the view reloads over REST.
        this.seq = msg.seq;
        if (this.sub?.onReset) this.sub.onReset();
        break;
      case "event":
        // Handlers upsert by id (and charts drop points they already have), so an event seen twice, as a
        // replay after a view switch or a reconnect, does no harm.
        this.see(msg.seq);
        if (this.sub?.handler) {
          try {
            this.sub.handler(msg);
          } catch (exc) {
            console.error("live handler failed", exc);
          }
        }
        break;
      case "pong":
        break;
      case "error":
        console.warn("live:", msg);
        break;
      default:
        break;
    }
  }

  sendSubscription(since) {
    if (!this.sub) return;
    const { topics, services, series } = this.sub;
    this.send({ type: "subscribe", topics, services, series, since: since ?? null });
  }

  /** The current sequence number: a view reads it *before* loading over REST and subscribes from it, so
   * nothing that happens while it loads is missed (handlers upsert, a replayed event does no harm). */
  mark() {
    return this.seq;
  }

  /**
   * Replace the subscription with the current view's.
   * @param {{topics: string[], services?: string[], series?: string[], since?: number|null,
   *          handler: (ev: {seq, topic, ts, data}) => void, onReset?: () => void}} sub
   */
  subscribe(sub) {
    this.sub = { services: [], series: [], ...sub };
    const since = sub.since === undefined ? this.seq : sub.since;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.onStatus("connecting", "subscribing…");
      this.sendSubscription(since);
    }
  }

  /** A handle for one view: its ``subscribe`` does nothing once another view has taken over, so a view
   * whose REST load finishes after the user moved on cannot replace the new view's subscription. */
  scope() {
    this.scopeId = (this.scopeId || 0) + 1;
    const id = this.scopeId;
    return {
      mark: () => this.mark(),
      subscribe: (sub) => {
        if (id === this.scopeId) this.subscribe(sub);
      },
      active: () => id === this.scopeId,
    };
  }

  /** Forget the view's subscription (the next view sends its own; an empty topic list would mean all). */
  unsubscribe() {
    this.sub = null;
  }
}
