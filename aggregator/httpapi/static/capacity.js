// The capacity planners' view of a region, from GET /v1/capacity: per
// sealed minute the viewers, the distinct channels watched (= multicast
// groups the region's access nodes replicate) and the channel changes; the
// peak minute; and the viewers per channel in the open minute.

import { get } from "./api.js";
import { el, stateOf, hintOf } from "./dom.js";
import { count, tick, exact, interval, hm, dayHm, minuteIncrs, tzMode, zoneName } from "./format.js";

const minuteMs = 60000;
const colors = { viewers: "#4e79a7", channels: "#e15759", zaps: "#59a14f" };

export class Capacity {
  constructor() {
    this.regionSel = document.getElementById("capacity-region");
    this.windowSel = document.getElementById("capacity-window");
    this.result = document.getElementById("capacity-result");
    this.box = document.getElementById("capacity-chart");
    this.newest = null;
    this.charts = [];
    this.gen = 0;
    this.regionSel.addEventListener("change", () => this.load());
    this.windowSel.addEventListener("change", () => this.load());
    new ResizeObserver(() => {
      const { width, height } = this.size();
      this.charts.forEach((ch, i) => {
        if (Math.abs(ch.width - width) > 1) ch.setSize({ width, height: Math.round(height / 3) + (i === 2 ? 28 : 0) });
      });
    }).observe(this.result);
  }

  setRegions(names) {
    const cur = this.regionSel.value;
    this.regionSel.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(cur)) this.regionSel.value = cur;
    if (names.length === 0) {
      this.result.replaceChildren(stateOf("No region seen yet: events carry no region field."));
    }
  }

  setNewest(ms) {
    this.newest = ms;
    this.load();
  }

  refresh() {
    if (this.last) this.render(this.last);
  }

  async load() {
    const region = this.regionSel.value;
    if (!region || this.newest === null) return;
    const to = this.newest + minuteMs;
    const from = to - Number(this.windowSel.value) * minuteMs;
    const gen = ++this.gen;
    this.result.setAttribute("aria-busy", "true");
    try {
      const c = await get("/v1/capacity", { region, from, to });
      if (gen !== this.gen) return;
      this.last = c;
      this.render(c);
    } catch (err) {
      if (gen !== this.gen) return;
      this.last = null;
      this.box.hidden = true;
      this.result.replaceChildren(stateOf(err, hintOf(err)));
    } finally {
      if (gen === this.gen) this.result.removeAttribute("aria-busy");
    }
  }

  size() {
    const w = Math.max(260, this.result.clientWidth);
    return { width: w, height: Math.round(Math.min(Math.max(180, w * 0.5), window.innerHeight * 0.3)) };
  }

  render(c) {
    const mins = c.minutes;
    const last = mins.length ? mins[mins.length - 1] : null;
    const stat = (id, label, value, title, data) =>
      el("div", { class: "stat" },
        el("span", { id, class: "big", title, dataset: data }, value),
        el("span", { class: "label" }, label));
    const now = (c.now.channels || []).slice(0, 8);
    const minuteRows = mins.slice().reverse().map((m) => el("tr", {
      dataset: { minute: m.minute, viewers: m.viewers, low: m.viewers_low, high: m.viewers_high, channels: m.distinct_channels, zaps: m.zaps },
    },
    el("td", {}, dayHm(Date.parse(m.minute))),
    el("td", { class: "num", title: exact(m.viewers) }, count(m.viewers)),
    el("td", { class: "num" }, m.distinct_channels),
    el("td", { class: "num" }, count(m.zaps))));
    const details = el("details", { id: "capacity-table" },
      el("summary", {}, "Minute table"),
      el("div", { class: "scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, el("th", {}, "minute (" + zoneName() + ")"),
          el("th", { class: "num" }, "viewers"), el("th", { class: "num" }, "channels"), el("th", { class: "num" }, "changes"))),
        el("tbody", {}, ...minuteRows))));
    if (this.tableOpen) details.open = true;
    details.addEventListener("toggle", () => { this.tableOpen = details.open; });

    this.result.replaceChildren(
      el("div", { class: "stats", id: "capacity-stats", dataset: { region: c.region, minute: last ? last.minute : "" } },
        stat("capacity-viewers", "viewers" + (last ? " at " + hm(Date.parse(last.minute)) : ""),
          last ? count(last.viewers) : "–", last ? exact(last.viewers) + " (" + interval(last.viewers_low, last.viewers_high) + ")" : "",
          last ? { value: last.viewers, low: last.viewers_low, high: last.viewers_high } : {}),
        stat("capacity-channels", "channels watched", last ? String(last.distinct_channels) : "–",
          "distinct channels: multicast groups needed", last ? { value: last.distinct_channels } : {}),
        stat("capacity-zaps", "changes / min", last ? count(last.zaps) : "–",
          last ? exact(last.zaps) + " channel changes" : "", last ? { value: last.zaps } : {})),
      el("p", { id: "capacity-peak", class: "sub", dataset: { minute: c.peak.minute, viewers: c.peak.viewers, channels: c.peak.distinct_channels, zaps: c.peak.zaps } },
        "peak ", el("strong", { title: exact(c.peak.viewers) }, count(c.peak.viewers)),
        ` viewers at ${hm(Date.parse(c.peak.minute))} ${zoneName(new Date(Date.parse(c.peak.minute)))} · ${c.peak.distinct_channels} channels · ${count(c.peak.zaps)} changes`),
      el("h3", {}, "now, per channel ", el("span", { class: "sub" }, c.now.minute ? hm(Date.parse(c.now.minute)) + " (open)" : "")),
      now.length
        ? el("ol", { id: "capacity-now", class: "flows" }, ...now.map((ch) => {
          const top = Math.max(1, now[0].high);
          const fill = el("span", { class: "fill" });
          fill.style.width = (100 * ch.viewers / top) + "%";
          return el("li", { dataset: { channel: ch.channel, viewers: ch.viewers } },
            el("span", { class: "name" }, ch.channel), el("span", { class: "bar" }, fill),
            el("span", { class: "num", title: exact(ch.viewers) }, count(ch.viewers)));
        }))
        : el("p", { class: "empty" }, "nobody watching right now"),
      details);
    this.draw(c);
  }

  // draw plots the three figures per minute as small multiples, one above
  // the other with a shared cursor: their scales differ by orders of
  // magnitude (thousands of viewers, tens of channels, hundreds of changes).
  draw(c) {
    for (const ch of this.charts || []) ch.destroy();
    this.charts = [];
    this.box.replaceChildren();
    if (c.minutes.length === 0) {
      this.box.hidden = true;
      return;
    }
    this.box.hidden = false;
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue("--fg").trim() || "#222";
    const grid = css.getPropertyValue("--grid").trim() || "#eee";
    const x = c.minutes.map((m) => Date.parse(m.minute) / 1000);
    const rows = [
      ["viewers", colors.viewers, c.minutes.map((m) => m.viewers)],
      ["channels watched", colors.channels, c.minutes.map((m) => m.distinct_channels)],
      ["changes / min", colors.zaps, c.minutes.map((m) => m.zaps)],
    ];
    const { width, height } = this.size();
    rows.forEach(([label, color, ys], i) => {
      const last = i === rows.length - 1;
      const title = el("div", { class: "spark-title" }, el("i", { class: "swatch" }), label,
        el("span", { class: "spark-value" }));
      title.firstChild.style.background = color;
      const holder = el("div");
      this.box.append(title, holder);
      const value = title.lastChild;
      const show = (idx) => {
        const j = idx === null || idx === undefined ? ys.length - 1 : idx;
        value.textContent = (idx === null || idx === undefined ? "" : hm(x[j] * 1000) + " ") + count(ys[j]);
      };
      const opts = {
        width,
        height: Math.round(height / 3) + (last ? 28 : 0),
        tzDate: tzMode() === "utc" ? (ts) => uPlot.tzDate(new Date(ts * 1000), "UTC") : undefined,
        legend: { show: false },
        cursor: { sync: { key: "capacity" }, drag: { x: false, y: false, setScale: false } },
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] } },
        series: [{}, { label, stroke: color, width: 1.5, fill: color + "22", points: { show: false } }],
        axes: [
          { show: last, stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid }, incrs: minuteIncrs, values: (u, sp) => sp.map((t) => hm(t * 1000)) },
          { stroke: fg, grid: { stroke: grid }, ticks: { show: false }, size: 48, space: 18, values: (u, v) => v.map(tick) },
        ],
        hooks: { setCursor: [(u) => show(u.cursor.idx)] },
      };
      this.charts.push(new uPlot(opts, [x, ys], holder));
      show(null);
    });
  }
}
