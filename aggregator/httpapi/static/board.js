// The now board: the channels of the newest sealed minute by audience, each
// with its 95% interval drawn as an error bar and its share of total TV
// use, and the open minute's live figure next to it.
//
// Minutes reach the board from the event stream as they seal (api.js reads
// GET /v1/stream with fetch rather than EventSource, which cannot send a
// bearer token); the open minute comes from GET /v1/now.

import { el, stateOf, hintOf } from "./dom.js";
import { count, exact, interval, pct, hm, zoneName } from "./format.js";

export class Board {
  constructor({ onPick }) {
    this.onPick = onPick;
    this.table = document.getElementById("board-table");
    this.rows = document.getElementById("board-rows");
    this.empty = document.getElementById("board-empty");
    this.minute = document.getElementById("board-minute");
    this.total = document.getElementById("board-total");
    this.more = document.getElementById("board-more");
    this.all = false;
    this.sealed = null;
    this.open = null;
    this.more.addEventListener("click", () => {
      this.all = !this.all;
      this.render();
    });
    // How many rows show depends on the window's height.
    window.addEventListener("resize", () => this.render());
  }

  // visible is how many rows show before "all channels": more on a tall
  // wall display than on a laptop.
  visible() {
    return window.innerHeight >= 1000 ? 15 : 10;
  }

  showSealed(m) {
    this.sealed = m;
    this.render();
  }

  showOpen(o) {
    this.open = o;
    this.render();
  }

  showError(err) {
    this.sealed = null;
    this.table.hidden = true;
    this.more.hidden = true;
    this.minute.textContent = "";
    this.total.textContent = "";
    const state = stateOf(err, hintOf(err));
    state.id = "board-empty";
    this.empty.replaceWith(state);
    this.empty = state;
  }

  render() {
    const m = this.sealed;
    const board = document.getElementById("board-panel");
    if (!m) {
      board.dataset.minute = "";
      return;
    }
    board.dataset.minute = m.minute;
    board.dataset.openMinute = this.open ? this.open.minute : "";
    this.empty.hidden = true;
    this.table.hidden = false;
    this.minute.textContent = `${hm(m.minute)} ${zoneName(new Date(m.minute))} · sealed`;
    this.total.replaceChildren(
      el("span", { class: "label" }, "total "),
      el("span", {
        id: "board-total-value", class: "big",
        title: exact(m.total) + " boxes watching, " + interval(m.total_low, m.total_high),
        dataset: { value: m.total, low: m.total_low, high: m.total_high },
      }, count(m.total)));

    const open = new Map();
    if (this.open && this.open.channels) {
      for (const c of this.open.channels) open.set(c.channel, c);
    }
    const top = m.channels.reduce((x, c) => Math.max(x, c.high), 0) || 1;
    const limit = this.all ? Infinity : this.visible();
    this.rows.replaceChildren(...m.channels.map((c, i) => {
      const o = open.get(c.channel);
      const bar = el("span", { class: "bar" },
        el("span", { class: "fill" }), el("span", { class: "whisker" }));
      const tr = el("tr", {
        dataset: {
          channel: c.channel, audience: c.audience, low: c.low, high: c.high, share: c.share,
          open: o ? o.audience : "",
        },
        hidden: i >= limit,
        title: "add " + c.channel + " to the curves",
        onclick: () => this.onPick(c.channel),
      },
      el("td", { class: "rank" }, i + 1),
      el("td", { class: "name" }, c.channel),
      el("td", { class: "num aud", title: exact(c.audience) + " (" + interval(c.low, c.high) + ")" }, count(c.audience)),
      el("td", { class: "bar-col", title: "95% interval " + interval(c.low, c.high) }, bar),
      el("td", { class: "num share" }, pct(c.share)),
      el("td", { class: "num live", title: o ? exact(o.audience) + " in the open minute" : "" }, o ? count(o.audience) : "–"));
      // Widths through the CSSOM: the page's CSP allows no inline styles.
      bar.firstChild.style.width = (100 * c.audience / top) + "%";
      bar.lastChild.style.left = (100 * c.low / top) + "%";
      bar.lastChild.style.width = (100 * (c.high - c.low) / top) + "%";
      bar.lastChild.hidden = c.low === c.high; // exact: no interval to draw
      return tr;
    }));
    const hidden = m.channels.length - Math.min(limit, m.channels.length);
    this.more.hidden = !this.all && hidden === 0;
    this.more.textContent = this.all ? "top channels only" : `all ${m.channels.length} channels`;
    if (m.channels.length === 0) {
      this.rows.append(el("tr", {}, el("td", { colspan: 6, class: "empty", dataset: { state: "zero" } },
        "No viewing in this minute.")));
    }
  }
}
