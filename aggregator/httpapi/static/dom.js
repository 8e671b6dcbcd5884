// Building elements, and the empty and error states every panel shows the
// same way. Text goes in through textContent only: a channel name is data,
// never markup.

// el makes an element: el("td", {class: "num", dataset: {v: 3}}, "3", child…).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// What a panel says for each kind of ApiError (api.js), before the
// server's own message, which names the value at fault.
const lead = {
  nodata: "No data yet",
  expired: "Data expired",
  notfound: "Not found",
  model: "Not available",
  bad: "Cannot ask that",
  auth: "Token needed",
  forbidden: "Not allowed",
  server: "Server error",
  network: "ratingsd unreachable",
};

// stateOf renders an error (or a plain message) as a panel state. The
// element carries data-state, so that a test (or a style) can tell the
// states apart without reading prose.
export function stateOf(err, hint) {
  if (typeof err === "string") {
    return el("p", { class: "empty", dataset: { state: "empty" } }, err);
  }
  const kind = err.kind || "server";
  const cls = kind === "nodata" ? "empty" : "error";
  const head = lead[kind] || "Error";
  let msg = err.message;
  // The server's messages often start with the same words ("no data yet:
  // …", "data expired: …"): say them once.
  if (msg.toLowerCase().startsWith(head.toLowerCase() + ": ")) msg = msg.slice(head.length + 2);
  return el("p", { class: cls, dataset: { state: kind } },
    el("strong", {}, head + ": "), msg,
    hint ? el("span", { class: "hint" }, " " + hint) : null);
}

// hintOf says what a planner can do about an error, where there is something.
export function hintOf(err) {
  switch (err.kind) {
    case "nodata": return "The first minute seals a minute or so after events start to arrive.";
    case "expired": return "Minute data is kept for the minute retention (48 h by default): pick a later window.";
    case "auth": return "Enter a token with the role read.";
    case "forbidden": return "Use a token with the role read or admin.";
    case "network": return "Retrying…";
  }
  return "";
}
