// Reach: distinct boxes on any of the chosen channels (none chosen = all)
// over a window, from GET /v1/reach. Always an estimate (a sketch union), so
// always shown with its interval. A window relative to the newest minute is
// counted again when a minute seals.

import { get } from "./api.js";
import { el, stateOf, hintOf } from "./dom.js";
import { count, exact, interval, hm, dayHm, zoneName, inputValue, parseInput, startOfDay } from "./format.js";

const minuteMs = 60000;

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
        const to = this.newest + minuteMs;
        this.fromIn.value = inputValue(to - 60 * minuteMs);
        this.toIn.value = inputValue(to);
      }
    });
  }

  setNewest(ms) {
    this.newest = ms;
    if (this.shown && this.windowSel.value !== "custom") this.compute();
  }

  // refresh re-renders times after the time zone toggle.
  refresh() {
    if (this.last) this.render(this.last);
    if (this.windowSel.value === "custom") {
      // The inputs hold wall times: keep the instants, rewrite the walls.
      if (this.customFrom) this.fromIn.value = inputValue(this.customFrom);
      if (this.customTo) this.toIn.value = inputValue(this.customTo);
    }
  }

  window() {
    const w = this.windowSel.value;
    if (w === "custom") {
      const from = parseInput(this.fromIn.value);
      const to = parseInput(this.toIn.value);
      if (Number.isNaN(from) || Number.isNaN(to)) return "enter both times of the window";
      this.customFrom = from;
      this.customTo = to;
      return { from, to };
    }
    if (this.newest === null) return "nothing is sealed yet";
    const to = this.newest + minuteMs;
    if (w === "day") return { from: startOfDay(this.newest), to };
    return { from: to - Number(w) * minuteMs, to };
  }

  async compute() {
    const win = this.window();
    if (typeof win === "string") {
      this.result.replaceChildren(stateOf(win));
      return;
    }
    const gen = ++this.gen;
    this.result.setAttribute("aria-busy", "true");
    try {
      const r = await get("/v1/reach", { channel: this.picker.chosen, from: win.from, to: win.to });
      if (gen !== this.gen) return;
      this.shown = true;
      this.last = r;
      this.render(r);
    } catch (err) {
      if (gen !== this.gen) return;
      this.shown = false;
      this.last = null;
      this.result.replaceChildren(stateOf(err, hintOf(err)));
    } finally {
      if (gen === this.gen) this.result.removeAttribute("aria-busy");
    }
  }

  render(r) {
    const from = Date.parse(r.from);
    const to = Date.parse(r.to);
    const sameDay = dayHm(from).slice(0, 10) === dayHm(to).slice(0, 10);
    this.result.replaceChildren(
      el("p", { class: "hero" },
        el("span", {
          id: "reach-value", class: "big", title: exact(r.reach) + " boxes",
          dataset: { reach: r.reach, low: r.low, high: r.high, from: r.from, to: r.to, channels: r.channels.join(",") },
        }, count(r.reach)),
        el("span", { class: "label" }, " boxes "),
        el("span", { class: "interval", title: "95% interval " + exact(r.low) + "–" + exact(r.high) },
          "(" + interval(r.low, r.high) + ")")),
      el("p", { class: "sub" },
        r.channels.length ? r.channels.join(", ") : "all channels", " · ",
        dayHm(from), "–", sameDay ? hm(to) : dayHm(to), " ", zoneName(new Date(from))));
  }
}
