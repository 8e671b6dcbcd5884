// Access to ratingsd's HTTP API (docs/api.md): JSON queries and the stream
// of sealed minutes, with the bearer token when authentication is on.
//
// The stream is read with fetch and a streaming body rather than with
// EventSource, because EventSource cannot send an Authorization header. One
// code path serves both modes; reconnection (with Last-Event-ID, so the
// newest minute is not replayed twice) is done here.

const tokenKey = "ratingsd.token";

// The token lives in session storage: it survives a reload of this tab,
// and ends with it.
let token = sessionStorage.getItem(tokenKey) || "";

export function hasToken() { return token !== ""; }

export function setToken(t) {
  token = t;
  if (t) sessionStorage.setItem(tokenKey, t);
  else sessionStorage.removeItem(tokenKey);
}

function headers(extra) {
  const h = Object.assign({ Accept: "application/json" }, extra);
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

// ApiError is a failed request. kind says what the page should show:
// "auth" (401: a token is needed), "forbidden" (403), "nodata" (404 before
// anything is sealed in the window), "notfound" (404: unknown channel or
// region), "expired" (410), "model" (409), "bad" (400), "server" (5xx) or
// "network" (no answer at all).
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
    this.kind = kindOf(status, message);
  }
}

function kindOf(status, message) {
  switch (status) {
    case 0: return "network";
    case 400: return "bad";
    case 401: return "auth";
    case 403: return "forbidden";
    case 404: return message.startsWith("no data yet") ? "nodata" : "notfound";
    case 409: return "model";
    case 410: return "expired";
  }
  return status >= 500 ? "server" : "bad";
}

async function errorOf(resp) {
  let msg = resp.status + " " + resp.statusText;
  try {
    const body = await resp.json();
    if (body && typeof body.error === "string") msg = body.error;
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(resp.status, msg);
}

// Listeners of an authentication failure (401) anywhere: the page asks for
// a token once, whichever request met it first.
const authListeners = new Set();
export function onAuthNeeded(f) { authListeners.add(f); }

// get fetches path with the query params (a value that is an array is
// repeated) and returns the decoded JSON, or throws an ApiError.
export async function get(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null) continue;
    for (const x of Array.isArray(v) ? v : [v]) q.append(k, String(x));
  }
  const qs = q.toString();
  const url = qs ? path + "?" + qs : path;
  let resp;
  try {
    resp = await fetch(url, { headers: headers(), cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "cannot reach ratingsd: " + e.message);
  }
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (err.kind === "auth") authListeners.forEach((f) => f(err));
    throw err;
  }
  return resp.json();
}

// ready returns null when /readyz says ready, else why not.
export async function ready() {
  try {
    const resp = await fetch("/readyz", { headers: headers(), cache: "no-store" });
    if (resp.ok) return null;
    return (await errorOf(resp)).message;
  } catch (e) {
    return "cannot reach ratingsd: " + e.message;
  }
}

// A stream silent for this long is taken to be dead: the server sends a
// heartbeat comment every 15 s.
const silenceMs = 45000;

// Stream follows GET /v1/stream. onMinute gets each sealed minute's JSON,
// in order; onState gets "connecting", "live", "down" (with the error and
// the delay before the next attempt) or "auth" (waits for restart()).
export class Stream {
  constructor(onMinute, onState) {
    this.onMinute = onMinute;
    this.onState = onState;
    this.lastId = "";
    this.ctrl = null;
    this.wake = null;
    this.stopped = false;
    this.run();
  }

  // restart drops the current connection (if any) and connects again at
  // once, e.g. with a new token.
  restart() {
    if (this.ctrl) this.ctrl.abort("restart");
    if (this.wake) this.wake();
  }

  stop() {
    this.stopped = true;
    this.restart();
  }

  // pause waits ms, or until restart().
  pause(ms) {
    return new Promise((resolve) => {
      const t = ms === Infinity ? null : setTimeout(resolve, ms);
      this.wake = () => { clearTimeout(t); this.wake = null; resolve(); };
    });
  }

  async run() {
    let delay = 1000;
    while (!this.stopped) {
      this.onState("connecting");
      const ctrl = new AbortController();
      this.ctrl = ctrl;
      let err = null;
      try {
        const h = headers({ Accept: "text/event-stream" });
        if (this.lastId) h["Last-Event-ID"] = this.lastId;
        const resp = await fetch("/v1/stream", { headers: h, cache: "no-store", signal: ctrl.signal });
        if (!resp.ok) {
          err = await errorOf(resp);
        } else {
          this.onState("live");
          delay = 1000;
          await this.read(resp.body, ctrl);
          err = new ApiError(0, "the stream ended");
        }
      } catch (e) {
        const why = ctrl.signal.aborted ? ctrl.signal.reason : null;
        if (why === "restart") delay = 0; // connect again at once
        err = e instanceof ApiError ? e
          : new ApiError(0, why === "silent" ? "the stream went silent (no heartbeat)" : String(e && e.message || e));
      }
      this.ctrl = null;
      if (this.stopped) return;
      if (err.kind === "auth") {
        this.onState("auth", err);
        authListeners.forEach((f) => f(err));
        await this.pause(Infinity);
        continue;
      }
      this.onState("down", err, delay);
      await this.pause(delay);
      delay = Math.min(Math.max(delay, 500) * 2, 15000);
    }
  }

  // read parses the event stream (the WHATWG Server-Sent Events format)
  // until it ends or goes silent.
  async read(body, ctrl) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    let ev = { event: "", id: "", data: [] };
    const silent = () => ctrl.abort("silent");
    let timer = setTimeout(silent, silenceMs);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        clearTimeout(timer);
        timer = setTimeout(silent, silenceMs);
        this.onState("live");
        buf += value;
        let nl;
        while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf.startsWith("\r\n", nl) ? 2 : 1));
          if (line === "") {
            this.dispatch(ev);
            ev = { event: "", id: "", data: [] };
            continue;
          }
          if (line.startsWith(":")) continue; // a comment: the greeting or a heartbeat
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "event") ev.event = val;
          else if (field === "id") ev.id = val;
          else if (field === "data") ev.data.push(val);
        }
      }
    } finally {
      clearTimeout(timer);
      reader.cancel().catch(() => {});
    }
  }

  dispatch(ev) {
    if (ev.event !== "minute" || ev.data.length === 0) return;
    let m;
    try {
      m = JSON.parse(ev.data.join("\n"));
    } catch {
      return; // not a minute this page understands; the next one will be
    }
    if (ev.id) this.lastId = ev.id;
    this.onMinute(m);
  }
}
