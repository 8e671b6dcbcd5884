// Minute audience curves of the chosen channels over a window that ends at
// the newest sealed minute, drawn with uPlot (vendored). The 95% interval of
// each point is a shaded band around its line (in the tuning model the
// counts are exact and the band is empty). A sealed minute from the stream
// is appended in place; anything else (another window, channel set, a gap
// in the stream) reloads the curves from GET /v1/audience.

import { get } from "./api.js";
import { el, stateOf, hintOf } from "./dom.js";
import { count, tick, exact, pct, hm, dayHm, iso, minuteIncrs, tzMode, zoneName } from "./format.js";

// Series colours: Tableau 10, distinct for colour-blind viewers in the
// first few, in the order channels are added.
export const palette = ["#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1",
  "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac"];

const minuteMs = 60000;

export class Curves {
  constructor({ picker, onMinutePick }) {
    this.picker = picker;
    this.onMinutePick = onMinutePick;
    this.panel = document.getElementById("curves-panel");
    this.box = document.getElementById("curves-chart");
    this.state = document.getElementById("curves-state");
    this.summary = document.getElementById("curves-summary");
    this.details = document.getElementById("curves-table");
    this.windowSel = document.getElementById("curves-window");
    this.metricSel = document.getElementById("curves-metric");
    this.chart = null;
    this.data = null; // {x: [minute ms], series: {channel: {aud, low, high, share}}}
    this.newest = null; // ms of the newest sealed minute known
    this.gen = 0; // the latest load; older answers are dropped
    this.loading = false;
    this.dirty = false;

    this.windowSel.addEventListener("change", () => this.load());
    this.metricSel.addEventListener("change", () => this.draw());
    this.details.addEventListener("toggle", () => this.renderTable());
    new ResizeObserver(() => this.resize()).observe(this.box);
  }

  windowMs() { return Number(this.windowSel.value) * minuteMs; }
  metric() { return this.metricSel.value; }
  colors() {
    const c = {};
    this.picker.chosen.forEach((ch, i) => { c[ch] = palette[i % palette.length]; });
    return c;
  }

  // setNewest sets the newest sealed minute (ms) and reloads.
  setNewest(ms) {
    this.newest = ms;
    this.load();
  }

  showState(s) {
    this.state.replaceWith(s);
    s.id = "curves-state";
    this.state = s;
    this.box.hidden = true;
    this.summary.hidden = true;
    this.panel.dataset.ready = "false";
  }

  async load() {
    this.picker.render(this.colors());
    if (this.newest === null) {
      this.showState(stateOf({ kind: "nodata", message: "nothing is sealed yet" }, hintOf({ kind: "nodata" })));
      return;
    }
    const chans = this.picker.chosen.slice();
    if (chans.length === 0) {
      this.showState(stateOf("Pick a channel: type its name above, or click it on the now board."));
      return;
    }
    const gen = ++this.gen;
    this.loading = true;
    this.dirty = false;
    const to = this.newest + minuteMs;
    const from = to - this.windowMs();
    let curves;
    try {
      curves = await Promise.all(chans.map((channel) => get("/v1/audience", { channel, from, to })));
    } catch (err) {
      if (gen !== this.gen) return;
      this.loading = false;
      this.showState(stateOf(err, hintOf(err)));
      return;
    }
    if (gen !== this.gen) return;
    this.loading = false;
    const x = curves[0].points.map((p) => Date.parse(p.minute));
    const series = {};
    curves.forEach((c) => {
      series[c.channel] = {
        aud: c.points.map((p) => p.audience),
        low: c.points.map((p) => p.low),
        high: c.points.map((p) => p.high),
        share: c.points.map((p) => p.share),
      };
    });
    this.data = { x, series, channels: chans, from: Date.parse(curves[0].from), to: Date.parse(curves[0].to) };
    this.draw();
    if (this.dirty) this.load(); // a minute arrived meanwhile
  }

  // append adds a sealed minute from the stream, or reloads when it does not
  // follow the last one.
  append(m) {
    const t = Date.parse(m.minute);
    if (this.newest !== null && t <= this.newest) return; // replayed
    const follows = this.data && this.newest !== null && t === this.newest + minuteMs &&
      this.data.x.length > 0 && this.data.x[this.data.x.length - 1] === this.newest;
    this.newest = t;
    if (this.loading) {
      this.dirty = true;
      return;
    }
    if (!follows) {
      this.load();
      return;
    }
    const d = this.data;
    const by = new Map(m.channels.map((c) => [c.channel, c]));
    d.x.push(t);
    for (const ch of d.channels) {
      const c = by.get(ch); // no row: no audience in this minute
      const s = d.series[ch];
      s.aud.push(c ? c.audience : 0);
      s.low.push(c ? c.low : 0);
      s.high.push(c ? c.high : 0);
      s.share.push(c ? c.share : 0);
    }
    d.to = t + minuteMs;
    const from = d.to - this.windowMs();
    let drop = 0;
    while (drop < d.x.length && d.x[drop] < from) drop++;
    if (drop > 0) {
      d.x.splice(0, drop);
      for (const ch of d.channels) {
        for (const k of ["aud", "low", "high", "share"]) d.series[ch][k].splice(0, drop);
      }
    }
    d.from = d.x.length ? d.x[0] : d.to;
    if (this.chart && this.chartMetric === this.metric()) {
      this.chart.setData(this.plotData());
      this.renderSummary();
      this.renderTable();
      this.markReady();
    } else {
      this.draw();
    }
  }

  plotData() {
    const d = this.data;
    const share = this.metric() === "share";
    return [d.x.map((t) => t / 1000),
      ...d.channels.map((ch) => share ? d.series[ch].share.map((v) => 100 * v) : d.series[ch].aud)];
  }

  // size fits the chart to its box: a share of the viewport's height that
  // the stylesheet sets (--chart-vh), lower on a wall display where the
  // other panels must fit beside and below it.
  size() {
    const w = Math.max(280, this.box.clientWidth || this.panel.clientWidth - 32);
    const vh = parseFloat(getComputedStyle(this.box).getPropertyValue("--chart-vh")) || 0.42;
    const h = Math.round(Math.min(Math.max(200, w * 0.42), window.innerHeight * vh));
    return { width: w, height: h };
  }

  resize() {
    if (!this.chart) return;
    const s = this.size();
    if (Math.abs(s.width - this.chart.width) > 1 || Math.abs(s.height - this.chart.height) > 1) this.chart.setSize(s);
  }

  // draw (re)builds the chart: after a load, and when the metric or the
  // time zone changes.
  draw() {
    if (!this.data) return;
    const d = this.data;
    const share = this.metric() === "share";
    const colors = this.colors();
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue("--fg").trim() || "#222";
    const grid = css.getPropertyValue("--grid").trim() || "#eee";
    this.state.hidden = true;
    this.box.hidden = false;
    this.summary.hidden = false;
    if (this.chart) this.chart.destroy();
    const fmtY = (v) => share ? pct(v / 100) : count(v);
    const opts = Object.assign(this.size(), {
      class: "curves-plot",
      // The x axis follows the time zone toggle: uPlot draws times in the
      // browser's zone unless tzDate shifts them.
      tzDate: tzMode() === "utc" ? (ts) => uPlot.tzDate(new Date(ts * 1000), "UTC") : undefined,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] } },
      cursor: { drag: { x: false, y: false, setScale: false }, points: { size: 7 } },
      // The summary table below is the legend: it has the colours, and
      // shows the values under the cursor.
      legend: { show: false },
      series: [
        {},
        ...d.channels.map((ch) => ({ label: ch, stroke: colors[ch], width: 2, points: { show: false } })),
      ],
      axes: [
        {
          stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid }, incrs: minuteIncrs,
          values: (u, splits) => splits.map((s) => {
            const label = hm(s * 1000);
            return label === "00:00" ? dayHm(s * 1000).split(" ").slice(0, 3).join(" ") : label;
          }),
        },
        { stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid }, size: 60, values: (u, vals) => vals.map(share ? fmtY : tick) },
      ],
      hooks: {
        // The intervals go under the lines: drawn after the axes and grid,
        // before the series.
        drawAxes: [(u) => { if (!share) this.drawBands(u, colors); }],
        setCursor: [(u) => this.readout(u.cursor.idx)],
        ready: [(u) => {
          u.over.addEventListener("click", () => {
            const i = u.cursor.idx;
            if (i !== null && i !== undefined) this.onMinutePick(u.data[0][i] * 1000);
          });
        }],
      },
    });
    this.chart = new uPlot(opts, this.plotData(), this.box);
    this.chartMetric = this.metric();
    this.renderSummary();
    this.renderTable();
    this.markReady();
  }

  markReady() {
    const d = this.data;
    this.panel.dataset.ready = "true";
    this.panel.dataset.from = iso(d.from);
    this.panel.dataset.to = iso(d.to);
    this.panel.dataset.channels = d.channels.join(",");
    this.panel.dataset.points = String(d.x.length);
  }

  drawBands(u, colors) {
    const d = this.data;
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    for (const ch of d.channels) {
      const s = d.series[ch];
      if (s.low.every((v, i) => v === s.high[i])) continue; // exact: no band
      ctx.beginPath();
      for (let i = 0; i < d.x.length; i++) {
        const px = u.valToPos(d.x[i] / 1000, "x", true);
        const py = u.valToPos(s.high[i], "y", true);
        if (i === 0) ctx.moveTo(px, py);
        else ctx.lineTo(px, py);
      }
      for (let i = d.x.length - 1; i >= 0; i--) {
        ctx.lineTo(u.valToPos(d.x[i] / 1000, "x", true), u.valToPos(s.low[i], "y", true));
      }
      ctx.closePath();
      ctx.globalAlpha = 0.18;
      ctx.fillStyle = colors[ch];
      ctx.fill();
    }
    ctx.restore();
  }

  // renderSummary writes the latest, peak and average minute audience (AMA)
  // of each curve, computed as the API computes them (the first minute with
  // the highest audience; the mean over the points).
  renderSummary() {
    const d = this.data;
    const colors = this.colors();
    const body = this.summary.tBodies[0];
    body.replaceChildren(...d.channels.map((ch) => {
      const s = d.series[ch];
      let peak = 0;
      let sum = 0;
      s.aud.forEach((v, i) => {
        sum += v;
        if (v > s.aud[peak]) peak = i;
      });
      const n = s.aud.length;
      const avg = n ? sum / n : 0;
      const last = n ? s.aud[n - 1] : 0;
      const sw = el("i", { class: "swatch" });
      sw.style.background = colors[ch];
      return el("tr", {
        dataset: {
          channel: ch, latest: last, peak: n ? s.aud[peak] : 0,
          peakMinute: n ? iso(d.x[peak]) : "", average: avg,
        },
      },
      el("td", { class: "name" }, sw, ch),
      el("td", { class: "num readout", title: exact(last) }, count(last)),
      el("td", { class: "num", title: exact(n ? s.aud[peak] : 0) }, count(n ? s.aud[peak] : 0)),
      el("td", {}, n ? hm(d.x[peak]) : "–"),
      el("td", { class: "num", title: avg.toFixed(1) }, count(avg)));
    }));
  }

  // readout shows the values of minute idx (under the cursor) in the
  // summary's second column, or the latest when the cursor is off the chart.
  readout(idx) {
    const d = this.data;
    if (!d) return;
    const at = idx === null || idx === undefined || idx >= d.x.length ? null : idx;
    const head = document.getElementById("curves-readout");
    head.textContent = at === null ? "latest" : hm(d.x[at]);
    const share = this.metric() === "share";
    for (const tr of this.summary.tBodies[0].rows) {
      const s = d.series[tr.dataset.channel];
      if (!s) continue;
      const i = at === null ? s.aud.length - 1 : at;
      tr.querySelector(".readout").textContent = i < 0 ? "–" : share ? pct(s.share[i]) : count(s.aud[i]);
    }
  }

  // renderTable fills the minute table, newest first, while it is open:
  // the chart's numbers in a form a screen reader (or a test) can read.
  renderTable() {
    if (!this.details.open || !this.data) return;
    const d = this.data;
    const table = this.details.querySelector("table");
    table.tHead.replaceChildren(el("tr", {}, el("th", {}, "minute (" + zoneName() + ")"),
      ...d.channels.map((ch) => el("th", { class: "num" }, ch))));
    const rows = [];
    for (let i = d.x.length - 1; i >= 0; i--) {
      rows.push(el("tr", { dataset: { minute: iso(d.x[i]) } },
        el("td", {}, dayHm(d.x[i])),
        ...d.channels.map((ch) => {
          const s = d.series[ch];
          return el("td", {
            class: "num",
            dataset: { channel: ch, audience: s.aud[i], low: s.low[i], high: s.high[i], share: s.share[i] },
            title: exact(s.aud[i]) + " · " + pct(s.share[i]),
          }, count(s.aud[i]));
        })));
    }
    table.tBodies[0].replaceChildren(...rows);
  }
}
