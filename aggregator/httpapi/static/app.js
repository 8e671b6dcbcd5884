// The dashboard: wires the panels to the API and to the stream of sealed
// minutes, and keeps the header's status honest.
//
// Start-up reads /v1/now (asking for a token on 401), the channel and
// region lists, and opens the stream. Every sealed minute, from the stream
// or from the periodic /v1/now that also refreshes the open minute, goes
// through one queue, in order, to every panel. The states a planner must be
// able to tell apart each have their own words: waiting for the first
// minute, stream interrupted, service not ready (e.g. NATS down), no minute
// for a while, data expired, token needed.

import { get, ready, Stream, setToken, hasToken, onAuthNeeded } from "./api.js";
import { el, stateOf, hintOf } from "./dom.js";
import { ago, hm, iso, zoneName, tzMode, setTzMode, onTzChange } from "./format.js";
import { Picker } from "./picker.js";
import { Board } from "./board.js";
import { Curves } from "./curves.js";
import { Reach } from "./reach.js";
import { Flow } from "./flow.js";
import { Capacity } from "./capacity.js";

const minuteMs = 60000;

const $ = (id) => document.getElementById(id);

let picked = false; // the planner chose the curves' channels
const curvesPicker = new Picker($("curves-picker"), {
  max: 8,
  onChange: () => {
    picked = true;
    curves.load();
  },
});
const reachPicker = new Picker($("reach-picker"), { max: 20, onChange: () => {} });
const flow = new Flow();
const curves = new Curves({ picker: curvesPicker, onMinutePick: (ms) => flow.pick(ms, curvesPicker.chosen[0]) });
const board = new Board({ onPick: (ch) => curvesPicker.toggle(ch) });
const reach = new Reach({ picker: reachPicker });
const capacity = new Capacity();

let newest = null; // Unix ms of the newest sealed minute shown
let newestTotal = null;
// A minute seals once the watermark passes it: -lateness (60 s by default)
// after its end, plus up to a sealing tick. usualAge is the least age (now
// minus the minute's end) seen when a minute arrived in the steady rhythm,
// one a minute; arrived is when the newest one came.
let usualAge = null;
let arrived = null;
let stream = null;
let streamState = "connecting";
let streamErr = null;
let started = false;
let queue = Promise.resolve();

// sealed queues a sealed minute for every panel; minutes older than the
// newest are dropped, so the stream and the poll can both deliver.
function sealed(m) {
  queue = queue.then(() => apply(m)).catch((e) => showError(e));
  return queue;
}

async function apply(m) {
  const t = Date.parse(m.minute);
  if (newest !== null && t <= newest) return;
  const first = newest === null;
  const now = Date.now();
  if (!first && arrived !== null && t === newest + minuteMs && now - arrived > 30000) {
    const age = now - (t + minuteMs);
    usualAge = usualAge === null ? age : Math.min(usualAge, age);
  }
  arrived = now;
  newest = t;
  newestTotal = m.total;
  try {
    await lists();
  } catch (err) {
    showError(err); // the minute is still worth showing, with the lists as they were
  }
  board.showSealed(m);
  // The open minute moved on with the sealed one; and after a burst of
  // sealed minutes (a replay) the stream drops all but the first few for a
  // slow reader, so the newest may come only this way. Not awaited: the
  // queue must not wait on a request that itself delivers a minute.
  get("/v1/now").then((now) => {
    board.showOpen(now.open);
    if (now.sealed) sealed(now.sealed);
  }, () => {});
  checkReady();
  // Until the planner picks channels, the curves show the top five of the
  // first minute that has any.
  const pickDefault = !picked && curvesPicker.chosen.length === 0 && m.channels.length > 0;
  if (pickDefault) curvesPicker.set(m.channels.slice(0, 5).map((c) => c.channel), true);
  if (first || pickDefault) curves.setNewest(t);
  else curves.append(m);
  reach.setNewest(t);
  flow.setNewest(t);
  capacity.setNewest(t);
  status();
}

// lists refreshes the known channels and regions (new ones appear as
// events arrive).
async function lists() {
  const [ch, rg] = await Promise.all([get("/v1/channels"), get("/v1/regions")]);
  const names = ch.channels.map((c) => c.channel);
  curvesPicker.setKnown(names.slice().sort());
  reachPicker.setKnown(names.slice().sort());
  flow.setChannels(names);
  capacity.setRegions(rg.regions);
}

// poll reads /v1/now: the open minute for the board, and a sealed minute
// the stream has not brought (after a reconnect, say).
async function poll() {
  const now = await get("/v1/now");
  board.showOpen(now.open);
  if (now.sealed) await sealed(now.sealed);
  return now;
}

async function start() {
  let now;
  try {
    now = await poll();
  } catch (err) {
    if (err.kind === "auth") return; // the token dialog is open; it calls start again
    showError(err);
    setTimeout(start, 5000);
    return;
  }
  showError(null);
  started = true;
  if (!now.sealed) {
    board.showError({ kind: "nodata", message: "waiting for the first sealed minute" });
    curves.load();
    try {
      await lists();
    } catch (err) {
      showError(err);
    }
  }
  if (!stream) stream = new Stream((m) => sealed(m), streamChanged);
  else stream.restart();
  status();
}

function streamChanged(state, err, delay) {
  streamState = state;
  streamErr = err ? { err, retry: delay } : null;
  status();
}

// status writes the header: the stream's state, the newest minute and its
// age, and the banners for a stale feed.
function status() {
  const s = $("status");
  let state = streamState;
  let text = { connecting: "connecting…", live: "live", down: "stream interrupted", auth: "token needed" }[state] || state;
  if (state === "live" && newest === null) {
    state = "waiting";
    text = "live · waiting for the first sealed minute";
  }
  if (state === "down" && streamErr) {
    const secs = Math.round((streamErr.retry || 0) / 1000);
    text = `stream interrupted: ${streamErr.err.message}` + (secs > 0 ? ` · retrying in ${secs} s` : " · retrying");
  }
  s.dataset.state = state;
  s.textContent = text;

  const latest = $("latest");
  const feed = $("banner-feed");
  if (newest === null) {
    latest.textContent = "";
    latest.dataset.minute = "";
    feed.hidden = true;
    return;
  }
  const age = Date.now() - (newest + minuteMs);
  latest.dataset.minute = iso(newest);
  latest.textContent = `newest minute ${hm(newest)} ${zoneName(new Date(newest))} · ended ${ago(Math.max(0, age))}`;
  // Late: older than minutes usually are when they arrive (unknown before
  // the rhythm is seen: taken as two minutes), or nothing new for three
  // minutes where one seals every minute.
  const late = age > Math.max(usualAge ?? 0, 2 * minuteMs) + 2 * minuteMs || Date.now() - arrived > 3 * minuteMs;
  let warn = "";
  if (late) {
    warn = `The newest minute ended ${Math.round(age / minuteMs)} min ago and no newer one has sealed: events may have stopped arriving (is the NATS feed down?). The figures shown are the last ones known.`;
  } else if (newestTotal === 0) {
    warn = "Nobody was counted in the newest minute: events may not be arriving (is the NATS feed connected?).";
  }
  feed.textContent = warn;
  feed.hidden = warn === "";
  feed.dataset.state = warn ? (late ? "stale" : "zero") : "";
}

function showError(err) {
  const b = $("banner-error");
  if (!err) {
    b.hidden = true;
    b.replaceChildren();
    return;
  }
  b.replaceChildren(...stateOf(err, hintOf(err)).childNodes);
  b.dataset.state = err.kind || "error";
  b.hidden = false;
}

async function checkReady() {
  const why = await ready();
  const b = $("banner-ready");
  b.hidden = why === null;
  b.dataset.state = why === null ? "" : "not-ready";
  b.textContent = why === null ? "" : "Service not ready: " + why;
}

// The token dialog: shown on the first 401, from any request.
const dialog = $("token-dialog");
let asking = false;
function askToken(err) {
  if (asking) return;
  asking = true;
  $("token-button").hidden = false;
  const e = $("token-error");
  e.hidden = !hasToken();
  e.textContent = hasToken() ? "That token was refused: " + err.message : "";
  $("token-input").value = "";
  if (!dialog.open) dialog.showModal();
  streamChanged("auth");
}
onAuthNeeded(askToken);

$("token-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const tok = $("token-input").value.trim();
  setToken(tok);
  const e = $("token-error");
  try {
    await get("/v1/channels");
  } catch (err) {
    e.textContent = err.kind === "auth" ? "That token was refused: " + err.message
      : err.kind === "forbidden" ? "That token may not read ratings: " + err.message
        : err.message;
    e.hidden = false;
    asking = true;
    return;
  }
  asking = false;
  e.hidden = true;
  dialog.close();
  if (started) {
    stream.restart();
    poll().catch(showError);
  } else {
    start();
  }
});
// Without a valid token there is nothing to show: keep the dialog up.
dialog.addEventListener("cancel", (ev) => ev.preventDefault());
$("token-button").addEventListener("click", () => {
  $("token-error").hidden = true;
  $("token-input").value = "";
  dialog.showModal();
});

// The time zone toggle.
function tzButtons() {
  for (const b of document.querySelectorAll(".tz button")) {
    b.setAttribute("aria-pressed", String(b.dataset.tz === tzMode()));
  }
}
for (const b of document.querySelectorAll(".tz button")) {
  b.addEventListener("click", () => setTzMode(b.dataset.tz));
}
onTzChange(() => {
  tzButtons();
  board.render();
  curves.draw();
  reach.refresh();
  flow.refresh();
  capacity.refresh();
  status();
});
tzButtons();

setInterval(status, 5000);
setInterval(() => { if (started) poll().then(() => showError(null), showError); }, 15000);
setInterval(checkReady, 15000);
checkReady();
start();
