// @cometgw/client: the comet gateway's client for browsers and Node 20+.
//
// One Comet object is one client of an id. It connects over WebSocket,
// falls back to an SSE stream and then to long-poll when a proxy or
// network blocks the one before, and carries the gateway's resume
// contract through every reconnect: it keeps the last cursor, comes back
// with it, hands each message to the app once and in order, and tells the
// app with a "missed" event when the gateway no longer has what it asked
// for. No dependencies; README.md is the guide, comet.d.ts the types.

const TRANSPORTS = ["websocket", "sse", "longpoll"];

/** An error with a code: "closed", "disconnected", "timeout", "transport",
 * "refused" (the gateway said no: a 4xx), "auth", "gateway" (an error reply). */
export class CometError extends Error {
  constructor(code, message, detail) {
    super(message);
    this.name = "CometError";
    this.code = code;
    if (detail !== undefined) this.detail = detail;
  }
}

// blocked remembers, per gateway URL, the transports that failed where a
// later one worked (a proxy that blocks WebSockets), until a time.
const blocked = new Map();

// parseCursor splits "<epoch hex>-<position>" into [epoch, position].
export function parseCursor(c) {
  const i = c ? c.lastIndexOf("-") : -1;
  return i < 0 ? null : [c.slice(0, i), Number(c.slice(i + 1))];
}

// tokenExpiry is a JWT's exp in ms since the epoch, or 0 if it has none
// this client can read.
export function tokenExpiry(token) {
  try {
    const p = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(p + "===".slice((p.length + 3) % 4))).exp;
    return typeof exp === "number" ? exp * 1000 : 0;
  } catch {
    return 0;
  }
}

// reconnectHint is the delay a WebSocket close asks for: a drain's 1012
// "reconnect in N ms", or -1 for none.
export function reconnectHint(code, reason) {
  const m = code === 1012 && /reconnect in (\d+) ms/.exec(reason || "");
  return m ? Number(m[1]) : -1;
}

// SSEParser reads a text/event-stream: push() text as it comes; each
// complete event goes to onEvent({id, event, data}) (data undefined for
// an event with no data lines); retry: goes to onRetry(ms).
export class SSEParser {
  constructor(onEvent, onRetry) {
    this.onEvent = onEvent;
    this.onRetry = onRetry;
    this.buf = "";
    this.reset();
  }
  reset() {
    this.id = undefined;
    this.event = "";
    this.data = undefined;
  }
  push(text) {
    this.buf += text;
    let m;
    const eol = /\r\n|\r|\n/g;
    let start = 0;
    while ((m = eol.exec(this.buf))) {
      // A CR at the very end may be the first half of a CR LF.
      if (m[0] === "\r" && m.index === this.buf.length - 1) break;
      this.line(this.buf.slice(start, m.index));
      start = m.index + m[0].length;
    }
    this.buf = this.buf.slice(start);
  }
  line(l) {
    if (l === "") {
      if (this.id !== undefined || this.data !== undefined) this.onEvent({ id: this.id, event: this.event, data: this.data });
      return this.reset();
    }
    if (l[0] === ":") return;
    const c = l.indexOf(":");
    const field = c < 0 ? l : l.slice(0, c);
    let v = c < 0 ? "" : l.slice(c + 1);
    if (v[0] === " ") v = v.slice(1);
    if (field === "data") this.data = this.data === undefined ? v : this.data + "\n" + v;
    else if (field === "id") this.id = v;
    else if (field === "event") this.event = v;
    else if (field === "retry" && /^\d+$/.test(v)) this.onRetry(Number(v));
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });

// httpError turns a refused answer into what the loop does next: wait
// Retry-After and try again (429, 503), refresh the token (401), or stop.
async function httpError(res) {
  const text = (await res.text().catch(() => "")).trim();
  const e = new CometError(res.status === 401 ? "auth" : "refused", `${res.status} ${text || res.statusText}`, { status: res.status });
  const after = Number(res.headers.get("Retry-After"));
  if (res.status === 429 || res.status >= 500) e.retryAfter = after > 0 ? after * 1000 : -1;
  return e;
}

export class Comet {
  #o;
  #handlers = new Map();
  #topics;
  #cursor;
  #last = null; // [epoch, position] of the last message given to the app
  #state = "idle";
  #transport = "";
  #token;
  #stop = null; // aborts the loop (close) or the current connection (restart)
  #conn = null; // AbortController of the current connection
  #ws = null;
  #ref = 0;
  #pending = new Map(); // ref -> {resolve, reject, timer}
  #waiters = []; // resolved when a connection opens
  #attempt = 0;
  #refresh = null;

  /**
   * @param {string} url the gateway, "https://gw.example.com" (in a
   *   browser, "" is the page's own origin)
   * @param {object} options see comet.d.ts
   */
  constructor(url, options = {}) {
    if (options.id === undefined || !/^-?\d+$/.test(String(options.id))) throw new CometError("refused", "comet: options.id must be an integer");
    const base = url || (typeof location !== "undefined" ? location.origin : "");
    if (!/^https?:\/\//.test(base)) throw new CometError("refused", `comet: url must start with http:// or https://, not ${JSON.stringify(base)}`);
    this.#o = {
      WebSocket: globalThis.WebSocket,
      fetch: globalThis.fetch?.bind(globalThis),
      transports: TRANSPORTS,
      minDelay: 500,
      maxDelay: 20000,
      connectTimeout: 5000,
      idleTimeout: 45000,
      requestTimeout: 20000,
      pollTimeout: 25,
      rememberFor: 600000,
      ...options,
      url: base.replace(/\/+$/, ""),
      id: String(options.id),
    };
    for (const t of this.#o.transports) if (!TRANSPORTS.includes(t)) throw new CometError("refused", `comet: unknown transport ${t}`);
    this.#topics = new Set(options.topics || []);
    this.#cursor = options.cursor || "";
    this.#last = parseCursor(this.#cursor);
    this.#token = options.token || "";
  }

  /** The connection's state: idle, connecting, open, reconnecting, closed. */
  get state() { return this.#state; }
  /** The transport in use or being tried: websocket, sse, longpoll. */
  get transport() { return this.#transport; }
  /** The position of the last message received, to resume from. */
  get cursor() { return this.#cursor; }
  /** The topics this client is in. */
  get topics() { return [...this.#topics]; }

  /** Calls fn for each event of type (message, missed, presence, state,
   * error, reply); returns a function that stops it. */
  on(type, fn) {
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    this.#handlers.get(type).add(fn);
    return () => this.#handlers.get(type).delete(fn);
  }

  #emit(type, ev) {
    for (const fn of this.#handlers.get(type) || []) {
      try { fn(ev); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
  }

  #setState(state, detail = {}) {
    if (this.#state === state && state !== "reconnecting") return;
    this.#state = state;
    this.#emit("state", { state, transport: this.#transport, ...detail });
  }

  /** Starts the client (once); returns this. */
  connect() {
    if (this.#stop) return this;
    this.#stop = new AbortController();
    this.#loop(this.#stop.signal);
    return this;
  }

  /** Stops the client: the connection is closed and every request waiting
   * for its reply is rejected. */
  close() {
    if (this.#state === "closed") return;
    this.#stop?.abort();
    this.#conn?.abort();
    clearTimeout(this.#refresh);
    this.#fail(new CometError("closed", "comet: client closed"));
    this.#setState("closed");
  }

  // #fail rejects every waiting request and opener with e.
  #fail(e) {
    for (const [, p] of this.#pending) { clearTimeout(p.timer); p.reject(e); }
    this.#pending.clear();
    for (const w of this.#waiters.splice(0)) w.reject(e);
  }

  // #loop connects, over the first transport not blocked, again and again
  // until close(): a transport that fails before opening gives way to the
  // next; one that worked and was cut is tried again after a delay.
  async #loop(signal) {
    while (!signal.aborted) {
      const key = this.#o.url;
      const now = Date.now();
      const skip = blocked.get(key) || {};
      let order = this.#o.transports.filter((t) => !(skip[t] > now) && (t !== "websocket" || this.#o.WebSocket));
      if (!order.length) order = this.#o.transports.filter((t) => t !== "websocket" || this.#o.WebSocket);
      let delay = -1;
      let opened = false;
      const failed = [];
      for (const t of order) {
        if (signal.aborted) return;
        this.#transport = t;
        this.#setState(this.#state === "idle" ? "connecting" : "reconnecting", { delay: 0 });
        const r = await this.#connectOnce(t, signal);
        if (r.opened) {
          opened = true;
          if (failed.length) blocked.set(key, Object.fromEntries(failed.map((f) => [f, Date.now() + this.#o.rememberFor])));
          delay = r.delay ?? -1;
          break;
        }
        if (r.fatal) {
          this.#emit("error", r.error);
          this.#fail(r.error);
          this.#stop = null;
          this.#setState("closed", { error: r.error });
          return;
        }
        if (r.error) this.#emit("error", r.error);
        if (r.delay !== undefined) { delay = r.delay; break; } // the gateway said when: not a transport problem
        if (!r.transportFailed) break;
        failed.push(t);
      }
      if (signal.aborted) return;
      if (!opened) this.#attempt++;
      if (delay < 0) {
        const d = Math.min(this.#o.maxDelay, this.#o.minDelay * 2 ** Math.min(this.#attempt, 16));
        delay = d / 2 + (Math.random() * d) / 2;
      }
      this.#setState("reconnecting", { delay });
      await sleep(delay, signal);
    }
  }

  // #connectOnce runs one connection over transport t until it ends, and
  // says whether it opened and what to do next.
  async #connectOnce(t, signal) {
    const conn = new AbortController();
    this.#conn = conn;
    const stop = () => conn.abort();
    signal.addEventListener("abort", stop, { once: true });
    let openedAt = 0;
    const opened = () => {
      openedAt = Date.now();
      this.#setState("open");
      this.#scheduleRefresh();
      for (const w of this.#waiters.splice(0)) w.resolve();
    };
    try {
      await this.#freshToken(false);
    } catch (e) {
      signal.removeEventListener("abort", stop);
      return { error: e instanceof CometError ? e : new CometError("auth", "comet: getToken(): " + (e?.message || e)) };
    }
    let r;
    try {
      r = await (t === "websocket" ? this.#websocket(conn.signal, opened) : t === "sse" ? this.#sse(conn.signal, opened) : this.#longpoll(conn.signal, opened));
    } catch (e) {
      r = { error: e instanceof CometError ? e : new CometError("transport", String(e?.message || e)), transportFailed: true };
    } finally {
      signal.removeEventListener("abort", stop);
      clearTimeout(this.#refresh);
      this.#ws = null;
      for (const [, p] of this.#pending) {
        clearTimeout(p.timer);
        p.reject(new CometError("disconnected", "comet: the connection ended before the reply; the request may or may not have been carried out"));
      }
      this.#pending.clear();
    }
    if (conn.restart) return { opened: openedAt > 0, delay: 0 };
    r.opened = openedAt > 0;
    if (r.opened && Date.now() - openedAt > 5000) this.#attempt = 0;
    if (r.error?.code === "auth" && !this.#o.getToken) r.fatal = true;
    if (r.error?.code === "auth") this.#token = "";
    return r;
  }

  // #freshToken asks getToken() for a token when there is none or it
  // expires within a minute (or always, with force).
  async #freshToken(force) {
    if (!this.#o.getToken) return;
    const exp = this.#token ? tokenExpiry(this.#token) : 0;
    if (!force && this.#token && (!exp || exp - Date.now() > 60000)) return;
    const t = await this.#o.getToken();
    if (typeof t !== "string" || !t) throw new CometError("auth", "comet: getToken() gave no token");
    this.#token = t;
  }

  // #scheduleRefresh renews the token before it expires: a WebSocket
  // sends it in an auth request, the others reconnect with it.
  #scheduleRefresh() {
    clearTimeout(this.#refresh);
    const exp = this.#o.getToken && tokenExpiry(this.#token);
    if (!exp) return;
    const life = exp - Date.now();
    this.#refresh = setTimeout(async () => {
      try {
        await this.#freshToken(true);
        if (this.#transport === "websocket") {
          await this.#request({ op: "auth", token: this.#token });
          this.#scheduleRefresh();
        } else if (this.#transport === "sse") this.#restart();
        else this.#scheduleRefresh();
      } catch (e) {
        this.#emit("error", e instanceof CometError ? e : new CometError("auth", String(e?.message || e)));
      }
    }, Math.max(1000, life - Math.max(1000, Math.min(30000, life / 5))));
  }

  // #restart ends the current connection to open the next at once (the
  // topics or the token changed).
  #restart() {
    if (this.#conn) { this.#conn.restart = true; this.#conn.abort(); }
  }

  #query(extra) {
    const q = new URLSearchParams(extra);
    if (this.#topics.size) q.set("topics", [...this.#topics].join(","));
    if (this.#o.presence) q.set("presence", "1");
    // The topics' last messages first, on the first connection only: a
    // client with a cursor continues where it was.
    if (this.#o.rewind > 0 && this.#topics.size && !q.has("cursor")) q.set("rewind", String(this.#o.rewind));
    return q;
  }

  #headers() {
    const h = {};
    if (this.#token) h.Authorization = "Bearer " + this.#token;
    return h;
  }

  // #deliver hands one message to the app, unless it is older than the
  // last one given (a copy that came twice).
  #deliver(data, cursor) {
    const c = parseCursor(cursor);
    if (c && this.#last && c[0] === this.#last[0] && c[1] < this.#last[1]) return;
    if (c) { this.#last = c; this.#cursor = cursor; }
    this.#emit("message", { data, cursor });
  }

  #resumed(cursor, missed) {
    if (missed) this.#emit("missed", { cursor, after: this.#cursor });
    if (cursor && (missed || !this.#cursor)) { this.#cursor = cursor; this.#last = parseCursor(cursor); }
  }

  #websocket(signal, opened) {
    return new Promise((resolve) => {
      const q = this.#query(this.#cursor ? { cursor: this.#cursor } : {});
      if (this.#token) q.set("token", this.#token);
      const ws = new this.#o.WebSocket(this.#o.url.replace(/^http/, "ws") + "/ws/" + this.#o.id + "?" + q, "comet.v1");
      ws.binaryType = "arraybuffer";
      ws.onerror = () => {}; // the close that follows says what happened
      let open = false;
      const timer = setTimeout(() => ws.close(), this.#o.connectTimeout);
      const stop = () => ws.close(1000);
      signal.addEventListener("abort", stop, { once: true });
      ws.onmessage = (e) => {
        if (typeof e.data !== "string") {
          const b = new Uint8Array(e.data);
          const nl = b.indexOf(10);
          return this.#deliver(b.slice(nl + 1), new TextDecoder().decode(b.slice(0, nl)));
        }
        if (e.data[0] !== "{") {
          const nl = e.data.indexOf("\n");
          return this.#deliver(e.data.slice(nl + 1), e.data.slice(0, nl));
        }
        const m = JSON.parse(e.data);
        if (m.type === "resumed") {
          this.#resumed(m.cursor, m.missed);
          if (!open) {
            open = true;
            clearTimeout(timer);
            this.#ws = ws;
            opened();
          }
        } else if (m.type === "presence") this.#emit("presence", m);
        else this.#answer(m);
      };
      ws.onclose = (e) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", stop);
        const hint = reconnectHint(e.code, e.reason);
        const r = { code: e.code, reason: e.reason };
        if (!open) r.transportFailed = true;
        else if (hint >= 0) r.delay = hint;
        else if (e.code === 1008 && e.reason === "token expired") { this.#token = ""; r.delay = 0; }
        else if (e.code === 1008 && e.reason === "kicked") { r.fatal = true; r.error = new CometError("refused", "comet: the server ended this client (kicked)"); }
        else if (e.code === 1013) this.#attempt++;
        resolve(r);
      };
    });
  }

  async #sse(signal, opened) {
    const q = this.#query(this.#cursor ? { cursor: this.#cursor } : {});
    const timer = setTimeout(() => this.#conn.abort(), this.#o.connectTimeout);
    let retry;
    let open = false;
    try {
      const res = await this.#o.fetch(this.#o.url + "/sse/" + this.#o.id + "?" + q, {
        headers: { Accept: "text/event-stream", ...this.#headers() },
        cache: "no-store",
        signal,
      });
      if (!res.ok) return { ...this.#refused(await httpError(res)) };
      const parser = new SSEParser((ev) => {
        if (ev.event === "missed") this.#resumed(ev.id, true);
        else if (ev.event === "presence") this.#emit("presence", JSON.parse(ev.data));
        else if (ev.data === undefined) this.#resumed(ev.id, false);
        else this.#deliver(ev.data, ev.id || "");
        if (!open) {
          open = true;
          clearTimeout(timer);
          opened();
        }
      }, (ms) => { retry = ms; });
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      // A stream quiet past idleTimeout (three of the gateway's 15 s
      // heartbeats) is taken for dead and opened again.
      let idle;
      const quiet = () => {
        clearTimeout(idle);
        idle = setTimeout(() => this.#conn.abort(), this.#o.idleTimeout);
      };
      try {
        for (quiet(); ; quiet()) {
          const { done, value } = await reader.read();
          if (done) break;
          parser.push(dec.decode(value, { stream: true }));
        }
      } finally {
        clearTimeout(idle);
      }
      return open ? { delay: retry } : { transportFailed: true };
    } catch (e) {
      if (signal.aborted) return { transportFailed: !open };
      return { transportFailed: !open, error: open ? undefined : new CometError("transport", "comet: sse: " + (e?.message || e)) };
    } finally {
      clearTimeout(timer);
    }
  }

  async #longpoll(signal, opened) {
    let first = true;
    while (!signal.aborted) {
      const q = this.#query(this.#cursor ? { cursor: this.#cursor } : {});
      q.set("timeout", first ? "1s" : this.#o.pollTimeout + "s");
      const timer = setTimeout(() => this.#conn.abort(), (first ? 0 : this.#o.pollTimeout * 1000) + this.#o.connectTimeout + 5000);
      let res, body;
      try {
        res = await this.#o.fetch(this.#o.url + "/poll/" + this.#o.id + "?" + q, { headers: this.#headers(), cache: "no-store", signal });
        if (!res.ok) return this.#refused(await httpError(res));
        body = await res.json();
      } catch (e) {
        if (signal.aborted) return { transportFailed: first };
        return { transportFailed: first, error: first ? new CometError("transport", "comet: long-poll: " + (e?.message || e)) : undefined };
      } finally {
        clearTimeout(timer);
      }
      const epoch = parseCursor(body.cursor)?.[0];
      if (body.missed) {
        // The answer's cursor is after its messages: they start afresh.
        this.#emit("missed", { cursor: body.cursor, after: this.#cursor });
        this.#last = null;
      }
      if (first) {
        first = false;
        opened();
      }
      for (const m of body.messages || []) {
        if (m.event === "presence") this.#emit("presence", JSON.parse(m.data));
        else this.#deliver(m.data, m.seq ? epoch + "-" + m.seq : "");
      }
      if (body.cursor) { this.#cursor = body.cursor; this.#last = parseCursor(body.cursor); }
    }
    return {};
  }

  // #refused sorts a refused HTTP answer: wait as told, refresh the
  // token, or stop for good (a 400 or 403 will not change by retrying).
  #refused(e) {
    if (e.retryAfter !== undefined) return { error: e, delay: e.retryAfter };
    if (e.code === "auth") return { error: e };
    return { error: e, fatal: true };
  }

  // #answer settles the request a reply or an error is for.
  #answer(m) {
    const p = this.#pending.get(m.ref);
    if (!p) return this.#emit("reply", m);
    this.#pending.delete(m.ref);
    clearTimeout(p.timer);
    const { type, ref, ...rest } = m;
    if (type === "error") p.reject(new CometError("gateway", m.error, rest));
    else p.resolve(rest);
  }

  // #opened resolves when a connection is open (at once if one is), or
  // rejects after requestTimeout.
  #opened() {
    if (this.#state === "open") return Promise.resolve();
    if (this.#state === "closed" || !this.#stop) return Promise.reject(new CometError("closed", "comet: client not connected (call connect())"));
    return new Promise((resolve, reject) => {
      const w = {
        resolve: () => { clearTimeout(timer); resolve(); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new CometError("timeout", `comet: not connected within ${this.#o.requestTimeout} ms`));
      }, this.#o.requestTimeout);
      this.#waiters.push(w);
    });
  }

  // #request sends one request over the WebSocket and resolves with its
  // reply (without type and ref), or rejects with the gateway's error.
  async #request(req) {
    await this.#opened();
    if (this.#transport !== "websocket" || !this.#ws) {
      throw new CometError("transport", `comet: ${req.op} needs a WebSocket; this client is on ${this.#transport}`);
    }
    const ref = ++this.#ref;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(ref);
        reject(new CometError("timeout", `comet: no reply to ${req.op} within ${this.#o.requestTimeout} ms; it may or may not have been carried out`));
      }, this.#o.requestTimeout);
      this.#pending.set(ref, { resolve, reject, timer });
      this.#ws.send(JSON.stringify({ ...req, ref }));
    });
  }

  /** Publishes data to a topic this client is in (WebSocket only); resolves
   * with the router's account: {op, delivered, dropped?, void?}. */
  publish(topic, data) { return this.#request({ op: "publish", topic, data }); }

  /** Sends data to id's connections (WebSocket only, if the gateway allows). */
  send(id, data) { return this.#request({ op: "send", id: Number(id), data }); }

  /** Measures a round trip to the router (WebSocket only). */
  ping() { return this.#request({ op: "ping" }); }

  /** Joins topics: a WebSocket joins in place, the others reconnect with
   * them (and their cursor). Kept across reconnects. */
  join(topics) { return this.#member("join", topics); }

  /** Leaves topics. */
  leave(topics) { return this.#member("leave", topics); }

  async #member(op, topics) {
    topics = [].concat(topics);
    for (const t of topics) op === "join" ? this.#topics.add(t) : this.#topics.delete(t);
    if (this.#state === "open" && this.#transport === "websocket") {
      const req = { op, topics };
      if (op === "join" && this.#o.presence) req.presence = true;
      try {
        return await this.#request(req);
      } catch (e) {
        if (op === "join" && e.code === "gateway") for (const t of topics) this.#topics.delete(t);
        throw e;
      }
    }
    this.#restart();
    await this.#opened();
    return { op };
  }
}
