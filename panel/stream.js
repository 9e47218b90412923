// One live event stream (EventSource) with the connection state it truly has.
//
// Why this is more than `new EventSource(url)`:
// - The browser reconnects by itself only after a 200 stream ends. Any non-200 answer
//   (401, 502, 503, 404) closes the EventSource for good, so we reconnect ourselves with
//   backoff. A new EventSource sends no Last-Event-ID, so the server answers it with a
//   fresh snapshot: the data shown after any reconnect is current.
// - Heartbeats are SSE comments, which EventSource never surfaces. We ask for them as real
//   events (`?heartbeat=event`), so "nothing arrived for twice the heartbeat interval" is
//   something we can see, show, and act on (the stream is replaced).
// - The state shown is the state we are in: "live" only while a stream is open.
// - Event ids are opaque: the browser keeps the last one for Last-Event-ID, we only show it.
//   They are not contiguous (one log for every qBittorrent instance: a stream restricted to
//   one instance, or the per-torrent stream, skips the others' ids), so nothing here counts
//   on the next id being the last one plus one.

const OFFLINE_AFTER = 5; // consecutive failed attempts before "Reconnecting" becomes "Offline"
const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const DEFAULT_HEARTBEAT_S = 15;

// Access token: a panel framed by Home Assistant on another site cannot keep a cookie, so
// its address carries ?token= and every request it makes passes the token on. A top-level
// page has none (the server traded it for an HttpOnly cookie and took it out of the address).
const pageToken = new URLSearchParams(location.search).get("token");

/** `url` with the page's access token added, when the page has one. */
export function withToken(url) {
  if (!pageToken) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(pageToken);
}

/** Signed out (a 401): every stream stops for good and `onSignedOut` is told once. */
export const auth = { signedOut: false, onSignedOut: null };

export function markSignedOut() {
  if (auth.signedOut) return;
  auth.signedOut = true;
  if (dbg.current) dbg.current.stop();
  if (auth.onSignedOut) auth.onSignedOut();
}

/** True when the server answers 401: retrying cannot help, signing in again can. */
async function unauthorized() {
  try {
    const res = await fetch(withToken("api/status"), { cache: "no-store" });
    return res.status === 401;
  } catch (_) {
    return false;
  }
}

/** Extra debug values that other modules publish (render timings). */
export const debugExtra = {};

// Read-only numbers for end-to-end tests (window.quartDl), shared by all streams.
const dbg = {
  sources: new Set(),
  opened: 0,
  heartbeats: 0,
  lastEventAt: 0,
  lastEventId: null,
  current: null, // the Stream whose state the page shows
  reconnects: 0,
};

function openCount() {
  let n = 0;
  for (const es of dbg.sources) if (es.readyState !== 2) n += 1;
  return n;
}

if (!window.quartDl) {
  Object.defineProperty(window, "quartDl", {
    configurable: false,
    enumerable: true,
    writable: false,
    value: Object.freeze({
      get eventSources() { return openCount(); },
      get opened() { return dbg.opened; },
      get heartbeats() { return dbg.heartbeats; },
      get lastEventAt() { return dbg.lastEventAt; },
      get lastEventId() { return dbg.lastEventId; },
      get state() { return auth.signedOut ? "signed_out" : dbg.current ? dbg.current.state : "offline"; },
      get attempts() { return dbg.current ? dbg.current.attempts : 0; },
      get stale() { return dbg.current ? dbg.current.isStale() : false; },
      get reconnects() { return dbg.reconnects; },
      get stream() { return dbg.current ? dbg.current.url : null; },
      get render() { return { ...debugExtra }; },
      toJSON() {
        const o = {};
        for (const k of ["eventSources", "opened", "heartbeats", "lastEventAt", "lastEventId",
          "state", "attempts", "stale", "reconnects", "stream"]) o[k] = this[k];
        return o;
      },
    }),
  });
}


export class Stream {
  /**
   * @param {string} url relative stream URL (heartbeat=event is added)
   * @param {object} handlers onSnapshot(data), onDiff(data), onStatus(data),
   *   onState(stream) after every state change, and optionally
   *   async gone() -> true when the resource no longer exists (stop instead of retrying).
   */
  constructor(url, handlers) {
    this.url = withToken(url + (url.includes("?") ? "&" : "?") + "heartbeat=event");
    this.h = handlers;
    this.es = null;
    this.state = "reconnecting"; // first connect counts as "connecting" (attempts 0)
    this.attempts = 0;
    this.heartbeat = DEFAULT_HEARTBEAT_S;
    this.lastEventAt = 0; // ms, last event or heartbeat on this stream
    this.openedAt = 0; // ms, when the current connection opened
    this.awaitingSnapshot = true; // a fresh EventSource always starts with a snapshot
    this.everLive = false;
    this.retryAt = 0;
    this.timer = 0;
    this.stopped = false;
    this.ticker = 0;
  }

  start() {
    dbg.current = this;
    this.stopped = false;
    this.connect();
    this.ticker = setInterval(() => this.tick(), 1000);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.ticker);
    this.closeSource();
    if (dbg.current === this) dbg.current = null;
  }

  /** Reconnect now (the "Retry now" button, the browser coming back online). */
  retryNow() {
    if (this.stopped || this.state === "live") return;
    this.connect();
  }

  /** True when neither an event nor a heartbeat arrived for twice the heartbeat interval. */
  isStale(now = Date.now()) {
    const since = this.freshAt();
    if (!since) return false;
    return now - since > 2 * this.heartbeat * 1000;
  }

  /** When the data was last known current: last event or heartbeat, or a resumed stream. */
  freshAt() {
    const resumed = this.state === "live" && !this.awaitingSnapshot ? this.openedAt : 0;
    return Math.max(this.lastEventAt, resumed);
  }

  /** Milliseconds since the data was last known current, or null before any data. */
  sinceUpdate(now = Date.now()) {
    const since = this.freshAt();
    return since ? now - since : null;
  }

  closeSource() {
    const es = this.es;
    this.es = null;
    if (es) {
      es.close();
      dbg.sources.delete(es);
    }
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = 0;
    this.retryAt = 0;
    this.closeSource();
    const es = new EventSource(this.url);
    dbg.opened += 1;
    dbg.sources.add(es);
    this.es = es;
    this.awaitingSnapshot = true;
    this.openedAt = 0;
    if (this.state !== "live") this.emit();

    es.onopen = () => {
      if (es !== this.es) return;
      this.openedAt = Date.now();
      // A new EventSource is live once its snapshot is in. After the browser's own
      // reconnect (same EventSource, Last-Event-ID sent) the server replays what was
      // missed or sends a snapshot, so the view is current from here on.
      if (!this.awaitingSnapshot) this.goLive();
    };
    es.onerror = () => {
      if (es !== this.es || this.stopped) return;
      this.openedAt = 0;
      if (es.readyState === 2) {
        // The browser gave up (non-200 answer or a wrong content type): our turn.
        dbg.sources.delete(es);
        this.es = null;
        this.scheduleReconnect();
      } else {
        // The stream ended or the connection failed; the browser retries by itself.
        this.attempts += 1;
        this.setState(this.failState());
      }
    };
    const on = (type, fn) => es.addEventListener(type, (ev) => {
      if (es !== this.es) return;
      this.received(ev);
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch (err) {
        console.warn("quart-dl: unparsable", type, "event", err);
        return;
      }
      fn(data, ev);
    });
    on("snapshot", (data) => {
      if (typeof data.heartbeat === "number" && data.heartbeat > 0) this.heartbeat = data.heartbeat;
      this.awaitingSnapshot = false;
      this.h.onSnapshot && this.h.onSnapshot(data);
      if (this.state !== "live") this.goLive();
      else this.emit();
    });
    on("diff", (data) => this.h.onDiff && this.h.onDiff(data));
    on("status", (data) => this.h.onStatus && this.h.onStatus(data));
    on("action", (data) => this.h.onAction && this.h.onAction(data));
    on("heartbeat", () => { dbg.heartbeats += 1; });
  }

  goLive() {
    if (this.everLive && this.state !== "live") dbg.reconnects += 1;
    this.everLive = true;
    this.attempts = 0;
    this.setState("live");
  }

  received(ev) {
    const now = Date.now();
    this.lastEventAt = now;
    dbg.lastEventAt = now;
    if (ev.lastEventId) dbg.lastEventId = ev.lastEventId;
  }

  failState() {
    if (typeof navigator !== "undefined" && navigator.onLine === false) return "offline";
    return this.attempts >= OFFLINE_AFTER ? "offline" : "reconnecting";
  }

  async scheduleReconnect() {
    this.attempts += 1;
    // A closed EventSource does not say why; a 401 means retrying is pointless.
    if (await unauthorized()) {
      markSignedOut();
      return;
    }
    if (this.stopped) return;
    if (this.h.gone) {
      let gone = false;
      try {
        gone = await this.h.gone();
      } catch (_) {
        gone = false;
      }
      if (this.stopped) return;
      if (gone) {
        this.stop();
        this.emit();
        return;
      }
    }
    const exp = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (this.attempts - 1));
    const delay = Math.round(exp * (0.8 + Math.random() * 0.4));
    this.retryAt = Date.now() + delay;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
    this.setState(this.failState());
  }

  tick() {
    if (this.stopped) return;
    const now = Date.now();
    const es = this.es;
    if (es && es.readyState === 1 && this.openedAt) {
      const since = Math.max(this.lastEventAt, this.openedAt);
      if (now - since > 2 * this.heartbeat * 1000) {
        // Open but silent for twice the heartbeat interval: a proxy holds events back or
        // the connection died without a reset. Replace the stream (it starts with a snapshot).
        this.attempts += 1;
        this.connect();
        this.setState(this.failState());
      }
    }
    this.h.onTick && this.h.onTick(this, now);
  }

  setState(state) {
    this.state = state;
    this.emit();
  }

  emit() {
    this.h.onState && this.h.onState(this);
  }
}
