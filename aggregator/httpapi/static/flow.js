// Audience flow: where a channel's viewers went in a sealed minute, and
// where its new viewers came from, from GET /v1/flow (the tuning model's
// exact counters). "off" is standby, switched off, or not seen before. By
// default the panel follows the newest minute; picking a minute (here, or
// by clicking the curves) holds it there.

import { get } from "./api.js";
import { el, stateOf, hintOf } from "./dom.js";
import { count, exact, hm, dayHm, zoneName, inputValue, parseInput } from "./format.js";

export class Flow {
  constructor() {
    this.channelSel = document.getElementById("flow-channel");
    this.minuteIn = document.getElementById("flow-minute");
    this.follow = document.getElementById("flow-follow");
    this.result = document.getElementById("flow-result");
    this.newest = null;
    this.minute = null; // the minute asked for, ms
    this.gen = 0;
    this.channelSel.addEventListener("change", () => this.load());
    this.minuteIn.addEventListener("change", () => {
      const t = parseInput(this.minuteIn.value);
      if (Number.isNaN(t)) return;
      this.follow.checked = false;
      this.minute = t;
      this.load();
    });
    this.follow.addEventListener("change", () => {
      if (this.follow.checked && this.newest !== null) this.at(this.newest);
    });
  }

  // setChannels fills the channel choice, keeping the current one.
  setChannels(names) {
    const cur = this.channelSel.value;
    this.channelSel.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(cur)) this.channelSel.value = cur;
  }

  setNewest(ms) {
    this.newest = ms;
    if (this.follow.checked || this.minute === null) this.at(ms);
  }

  // pick holds the panel at minute ms (a click on the curves), for channel
  // ch if given.
  pick(ms, ch) {
    this.follow.checked = false;
    if (ch && [...this.channelSel.options].some((o) => o.value === ch)) this.channelSel.value = ch;
    this.at(ms);
  }

  at(ms) {
    this.minute = ms;
    this.minuteIn.value = inputValue(ms);
    this.load();
  }

  refresh() {
    if (this.minute !== null) this.minuteIn.value = inputValue(this.minute);
    if (this.last) this.render(this.last);
  }

  async load() {
    const ch = this.channelSel.value;
    if (!ch || this.minute === null) return;
    const gen = ++this.gen;
    this.result.setAttribute("aria-busy", "true");
    try {
      const f = await get("/v1/flow", { from: ch, minute: this.minute });
      if (gen !== this.gen) return;
      this.last = f;
      this.render(f);
    } catch (err) {
      if (gen !== this.gen) return;
      this.last = null;
      this.result.replaceChildren(stateOf(err, hintOf(err)));
    } finally {
      if (gen === this.gen) this.result.removeAttribute("aria-busy");
    }
  }

  render(f) {
    const top = Math.max(1, ...f.out.map((e) => e.devices), ...f.in.map((e) => e.devices));
    const list = (id, rows, arrow, key) => el("ol", { id, class: "flows" }, ...rows.map((e) => {
      const fill = el("span", { class: "fill" });
      fill.style.width = (100 * e.devices / top) + "%";
      return el("li", { dataset: { state: e[key], devices: e.devices }, class: e[key] === "off" ? "off" : "" },
        el("span", { class: "name" }, arrow + " " + e[key]),
        el("span", { class: "bar" }, fill),
        el("span", { class: "num", title: exact(e.devices) }, count(e.devices)));
    }));
    const m = Date.parse(f.minute);
    const prev = f.previous_minute;
    this.result.replaceChildren(
      el("p", {
        id: "flow-head", class: "sub",
        dataset: { channel: f.channel, minute: f.minute, previous: prev.audience, outTotal: f.out_total, inTotal: f.in_total },
      },
      el("strong", {}, f.channel), ` in ${dayHm(m)} ${zoneName(new Date(m))} · `,
      el("span", { title: exact(prev.audience) }, count(prev.audience)), ` watching at ${hm(Date.parse(prev.minute))}`),
      el("div", { class: "flow-cols" },
        el("div", {},
          el("h3", {}, "went to ", el("span", { class: "num", title: exact(f.out_total) }, count(f.out_total))),
          f.out.length ? list("flow-out", f.out, "→", "to") : el("p", { class: "empty" }, "nobody left")),
        el("div", {},
          el("h3", {}, "came from ", el("span", { class: "num", title: exact(f.in_total) }, count(f.in_total))),
          f.in.length ? list("flow-in", f.in, "←", "from") : el("p", { class: "empty" }, "nobody joined"))));
  }
}
