// A channel picker: the chosen channels as removable chips, and a text box
// (with the known channels as suggestions) to add one. The curves and the
// reach panel each have one.

import { el } from "./dom.js";

let lists = 0;

export class Picker {
  // root is the element to fill; onChange gets the chosen channels.
  constructor(root, { max = 10, onChange }) {
    this.root = root;
    this.max = max;
    this.onChange = onChange;
    this.chosen = [];
    this.known = [];
    const id = "channels-" + ++lists;
    this.list = el("datalist", { id });
    this.chips = el("span", { class: "chips" });
    this.input = el("input", {
      type: "text", list: id, placeholder: "add channel…", size: 12,
      "aria-label": "add a channel", spellcheck: "false", autocomplete: "off",
    });
    this.msg = el("span", { class: "picker-msg", "aria-live": "polite" });
    // Enter adds the channel; it must not submit the form around the
    // picker (implicit submission comes with the keypress).
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        this.addTyped();
      }
    });
    this.input.addEventListener("keypress", (e) => {
      if (e.key === "Enter") e.preventDefault();
    });
    // Choosing a suggestion fires change (and input) without Enter.
    this.input.addEventListener("change", () => this.addTyped());
    root.append(this.chips, this.input, this.list, this.msg);
  }

  addTyped() {
    const name = this.input.value.trim();
    if (!name) return;
    if (this.known.length && !this.known.includes(name)) {
      this.msg.textContent = `unknown channel "${name}"`;
      return;
    }
    this.input.value = "";
    this.add(name);
  }

  // setKnown sets the suggestions: every channel the service has seen.
  setKnown(names) {
    this.known = names;
    this.list.replaceChildren(...names.map((n) => el("option", { value: n })));
  }

  has(name) { return this.chosen.includes(name); }

  add(name) {
    this.msg.textContent = "";
    if (this.has(name)) return;
    if (this.chosen.length >= this.max) {
      this.msg.textContent = `at most ${this.max} channels`;
      return;
    }
    this.set([...this.chosen, name]);
  }

  remove(name) { this.set(this.chosen.filter((c) => c !== name)); }

  toggle(name) {
    if (this.has(name)) this.remove(name);
    else this.add(name);
  }

  // set replaces the chosen channels. colors, if given, maps a channel to
  // its series colour, shown on its chip.
  set(names, quiet = false) {
    this.chosen = names.slice(0, this.max);
    this.render();
    if (!quiet) this.onChange(this.chosen);
  }

  render(colors = this.colors) {
    this.colors = colors;
    this.chips.replaceChildren(...this.chosen.map((c) =>
      el("span", { class: "chip", dataset: { channel: c } },
        colors && colors[c] ? el("i", { class: "swatch", dataset: { color: colors[c] } }) : null,
        c,
        el("button", {
          type: "button", class: "x", "aria-label": "remove " + c, title: "remove",
          onclick: () => this.remove(c),
        }, "×"))));
    // Colours are set through the CSSOM: the page's CSP has no inline styles.
    for (const s of this.chips.querySelectorAll(".swatch")) s.style.background = s.dataset.color;
    if (this.chosen.length === 0 && this.root.dataset.empty) {
      this.chips.append(el("span", { class: "chip none" }, this.root.dataset.empty));
    }
  }
}
