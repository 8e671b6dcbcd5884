// Reach: distinct boxes on any of the chosen channels (none chosen = all)
// over a window, from GET /v1/reach. Always an estimate (a sketch union), so
// always shown with its interval. A window relative to the newest minute is
// counted again when a minute seals.
//
// Two tiers count reach, each under a key per epoch (docs/semantics.md,
// Reach tiers): the minute tier within one day, the hour tier whole hours
// within one ISO week, and nothing counts across two epochs. The presets
// therefore ask only for windows one tier can count, from the day start
// that GET /v1/epochs gives (epochs.js), and the answer says which tier and
// epoch counted it. A custom window is sent as entered: the server's
// explanation of a refusal is shown as it is.

import { get } from "./api.js";
import { el, stateOf, hintOf } from "./dom.js";
import { count, exact, interval, hm, dayHm, iso, zoneName, inputValue, parseInput } from "./format.js";
import { Calendar } from "./epochs.js";

const minuteMs = 60000;

// What a preset asks for: the last so many minutes, the current day or week.
const presets = {
  "15": { len: 15 * minuteMs, what: "The last 15 minutes cross" },
  "60": { len: 60 * minuteMs, what: "The last hour crosses" },
  "180": { len: 180 * minuteMs, what: "The last 3 hours cross" },
};

export class Reach {
  constructor({ picker }) {
    this.picker = picker;
    this.form = document.getElementById("reach-form");
    this.windowSel = document.getElementById("reach-window");
    this.custom = document.getElementById("reach-custom");
    this.fromIn = document.getElementById("reach-from");
    this.toIn = document.getElementById("reach-to");
    this.result = document.getElementById("reach-result");
    this.newest = null;
    this.cal = null; // the Calendar, once GET /v1/epochs has answered
    this.shown = false; // a figure is on screen: keep it current
    this.gen = 0;
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.compute();
    });
    this.windowSel.addEventListener("change", () => {
      const custom = this.windowSel.value === "custom";
      this.custom.hidden = !custom;
      if (custom && !this.fromIn.value && this.newest !== null) {
        // Start from the last hour as a preset would count it.
        const to = this.newest + minuteMs;
        const win = this.cal ? this.cal.recent(to, 60 * minuteMs) : { from: to - 60 * minuteMs, to };
        this.fromIn.value = inputValue(win.from);
        this.toIn.value = inputValue(win.to);
      }
    });
  }

  setNewest(ms) {
    this.newest = ms;
    if (!this.cal) this.calendar().catch(() => {}); // shown when a count needs it
    if (this.shown && this.windowSel.value !== "custom") this.compute();
  }

  // calendar reads the day start once from GET /v1/epochs.
  async calendar() {
    if (!this.cal) {
      const ep = await get("/v1/epochs");
      this.cal = new Calendar(ep.day_start);
      this.labelPresets();
    }
    return this.cal;
  }

  // labelPresets names where today and this week start, in the zone shown:
  // epochs are UTC-based, so "today" starts at the day start, not at local
  // midnight.
  labelPresets() {
    if (!this.cal || this.newest === null) return;
    const to = this.newest + minuteMs;
    const day = this.cal.day(to - 1).start;
    const week = this.cal.week(to - 1).start;
    const zone = zoneName(new Date(day));
    for (const o of this.windowSel.options) {
      if (o.value === "day") o.textContent = `today (from ${hm(day)} ${zone})`;
      if (o.value === "week") o.textContent = `this week (from ${dayHm(week).replace(/ \d+ \w+ /, " ")} ${zone})`;
    }
  }

  // refresh re-renders times after the time zone toggle.
  refresh() {
    this.labelPresets();
    if (this.last) this.render(this.last);
    if (this.windowSel.value === "custom") {
      // The inputs hold wall times: keep the instants, rewrite the walls.
      if (this.customFrom) this.fromIn.value = inputValue(this.customFrom);
      if (this.customTo) this.toIn.value = inputValue(this.customTo);
    }
  }

  // window returns the window to ask for, {from, to, how, what}, or why
  // there is none.
  async window() {
    const w = this.windowSel.value;
    if (w === "custom") {
      const from = parseInput(this.fromIn.value);
      const to = parseInput(this.toIn.value);
      if (Number.isNaN(from) || Number.isNaN(to)) return "enter both times of the window";
      this.customFrom = from;
      this.customTo = to;
      return { from, to, how: "asked", what: "" };
    }
    if (this.newest === null) return "nothing is sealed yet";
    const cal = await this.calendar();
    this.labelPresets();
    const to = this.newest + minuteMs;
    if (w === "day") return { ...cal.today(to), what: "Today" };
    if (w === "week") return { ...cal.thisWeek(to), what: "This week" };
    const p = presets[w];
    return { ...cal.recent(to, p.len), what: p.what };
  }

  async compute() {
    const gen = ++this.gen;
    this.result.setAttribute("aria-busy", "true");
    try {
      const win = await this.window();
      if (gen !== this.gen) return;
      if (typeof win === "string") {
        this.result.replaceChildren(stateOf(win));
        return;
      }
      const r = await get("/v1/reach", { channel: this.picker.chosen, from: win.from, to: win.to });
      if (gen !== this.gen) return;
      this.shown = true;
      this.last = { r, win };
      this.render(this.last);
    } catch (err) {
      if (gen !== this.gen) return;
      this.shown = false;
      this.last = null;
      this.result.replaceChildren(stateOf(err, this.hint(err)));
    } finally {
      if (gen === this.gen) this.result.removeAttribute("aria-busy");
    }
  }

  // hint says what to ask instead of a refused window: the day and week
  // boundaries in the zone shown.
  hint(err) {
    if (err.kind === "bad" && this.cal && /key epochs/.test(err.message)) {
      const at = this.cal.dayStart === 0 ? "00:00 UTC" : `${this.cal.dayStartText} UTC`;
      const local = zoneName() === "UTC" ? "" : ` (${hm(this.cal.day(Date.now()).start)} ${zoneName()})`;
      return `Days start at ${at}${local}, weeks on Monday: pick a window within one day, or whole hours within one week, or a preset.`;
    }
    if (err.kind === "expired") return "Minutes are kept for the minute retention (48 h by default); whole hours within a week, for the retention (28 days by default).";
    return hintOf(err);
  }

  render({ r, win }) {
    const from = Date.parse(r.from);
    const to = Date.parse(r.to);
    const sameDay = dayHm(from).slice(0, 10) === dayHm(to).slice(0, 10);
    const zone = zoneName(new Date(from));
    const hour = r.tier === "hour";
    const epoch = hour ? "week " + r.epoch : "day " + r.epoch;
    const start = this.cal ? (hour ? this.cal.week(from).start : this.cal.day(from).start) : null;
    const note = this.note(win, r, zone);
    this.result.replaceChildren(
      el("p", { class: "hero" },
        el("span", {
          id: "reach-value", class: "big", title: exact(r.reach) + " boxes",
          dataset: {
            reach: r.reach, low: r.low, high: r.high, from: r.from, to: r.to, channels: r.channels.join(","),
            tier: r.tier, epoch: r.epoch, how: win.how, askedFrom: iso(win.from), askedTo: iso(win.to),
          },
        }, count(r.reach)),
        el("span", { class: "label" }, " boxes "),
        el("span", { class: "interval", title: "95% interval " + exact(r.low) + "–" + exact(r.high) },
          "(" + interval(r.low, r.high) + ")")),
      el("p", { class: "sub" },
        r.channels.length ? r.channels.join(", ") : "all channels", " · ",
        dayHm(from), "–", sameDay ? hm(to) : dayHm(to), " ", zone),
      el("p", {
        id: "reach-tier", class: "tier", dataset: { tier: r.tier, epoch: r.epoch },
        title: hour
          ? "Hourly sketches under the week's key: whole hours within one ISO week, kept for the retention"
          : "Minute sketches under the day's key: any minutes within one day, kept for the minute retention",
      },
      el("span", { class: "badge" }, r.tier + " tier"), " ", epoch,
      start !== null ? ` (from ${hour ? dayHm(start) : hm(start)} ${zone})` : "",
      " · ", hour ? "hour" : "minute", " resolution"),
      ...(note ? [note] : []));
  }

  // note says how a preset's window was fitted to one epoch, or that the
  // window counted is shorter than the one asked (nothing sealed before).
  note(win, r, zone) {
    if (!this.cal || win.how === "asked" && Date.parse(r.from) === win.from && Date.parse(r.to) === win.to) return null;
    let text;
    const last = win.what.startsWith("The last");
    const dayStart = `the day start (${hm(this.cal.day(this.newest ?? win.to - 1).start)} ${zone}), where the minute tier's key changes`;
    if (win.how === "hours" && last) {
      text = `${win.what} ${dayStart}: counted in whole hours, which the hour tier counts within one week.`;
    } else if (win.how === "day" && last) {
      text = `${win.what} ${dayStart}: counted from the day start.`;
    } else if (Date.parse(r.from) > win.from || Date.parse(r.to) < win.to) {
      text = "Counted over the part of the window with sealed data.";
    }
    return text ? el("p", { id: "reach-note", class: "note", dataset: { how: win.how } }, text) : null;
  }
}
