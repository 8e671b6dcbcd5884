// How the page writes numbers and times: counts in thousands and millions
// with three significant digits, shares in percent, minutes in UTC or in
// the browser's time zone (the toggle in the header).

// count writes a count readably: 987, 9.88k, 98.8k, 988k, 9.88M. The exact
// figure goes into a title attribute next to it (exact()).
export function count(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  const a = Math.abs(n);
  if (a < 1000) return String(Math.round(n));
  const units = [[1e3, "k"], [1e6, "M"], [1e9, "G"]];
  for (let i = 0; i < units.length; i++) {
    const [div, unit] = units[i];
    const v = n / div;
    const av = Math.abs(v);
    const digits = av < 10 ? 2 : av < 100 ? 1 : 0;
    const s = v.toFixed(digits);
    // 999.6k rounds to "1000k": write it as 1.00M instead.
    if (Math.abs(Number(s)) >= 1000 && i + 1 < units.length) continue;
    return s + unit;
  }
  return String(n);
}

// tick writes a count for an axis: as count, without trailing zeros
// ("4.5k", "4k"), since the ticks are round numbers.
export function tick(n) {
  const s = count(n);
  const m = /^(-?\d+)\.(\d+)([kMG])$/.exec(s);
  if (!m) return s;
  const frac = m[2].replace(/0+$/, "");
  return m[1] + (frac ? "." + frac : "") + m[3];
}

// Time axis steps in whole minutes: a minute is the unit of every figure.
export const minuteIncrs = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

// exact writes a count in full, with thin spaces between thousands.
export function exact(n) {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, "\u2009");
}

// interval writes an estimate's 95% interval, or "exact" when it has none.
export function interval(low, high) {
  if (low === high) return "exact";
  return count(low) + "–" + count(high);
}

// pct writes a share (0..1) in percent: 23.4%, 0.52% below 1%.
export function pct(share) {
  if (share === null || share === undefined || Number.isNaN(share)) return "–";
  const p = share * 100;
  return (p !== 0 && Math.abs(p) < 1 ? p.toFixed(2) : p.toFixed(1)) + "%";
}

// The time zone mode: "utc" or "local", kept across reloads.
const tzKey = "ratingsd.tz";
let mode = localStorage.getItem(tzKey) === "local" ? "local" : "utc";
const tzListeners = new Set();

export function tzMode() { return mode; }

export function setTzMode(m) {
  if (m === mode) return;
  mode = m;
  localStorage.setItem(tzKey, m);
  tzListeners.forEach((f) => f(m));
}

export function onTzChange(f) { tzListeners.add(f); }

function fmt(opts) {
  const o = Object.assign({ hourCycle: "h23" }, opts);
  if (mode === "utc") o.timeZone = "UTC";
  return new Intl.DateTimeFormat("en-GB", o);
}

// zoneName is how the current mode names its zone: "UTC", or the browser's
// zone abbreviation ("CET", "GMT+5:30").
export function zoneName(d = new Date()) {
  if (mode === "utc") return "UTC";
  const part = new Intl.DateTimeFormat("en-GB", { timeZoneName: "short" })
    .formatToParts(d).find((p) => p.type === "timeZoneName");
  return part ? part.value : "local";
}

// hm writes the time of day of a minute: "20:02".
export function hm(d) {
  return fmt({ hour: "2-digit", minute: "2-digit" }).format(toDate(d));
}

// dayHm writes a minute with its day: "Thu 27 Nov 20:02".
export function dayHm(d) {
  return fmt({ weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" })
    .format(toDate(d)).replace(",", "");
}

// ago writes how long ago t was, roughly: "35 s ago", "4 min ago".
export function ago(ms) {
  const s = Math.round(ms / 1000);
  if (s < 5) return "just now";
  if (s < 90) return s + " s ago";
  const m = Math.round(s / 60);
  if (m < 90) return m + " min ago";
  return Math.round(m / 60) + " h ago";
}

// iso writes a minute as the API does: RFC 3339 in UTC, no milliseconds.
export function iso(ms) {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

export function toDate(d) {
  return d instanceof Date ? d : new Date(d);
}

// The value of an <input type="datetime-local"> is a wall time without a
// zone: the mode says which zone it is in.

// inputValue writes a time for a datetime-local input.
export function inputValue(d) {
  const t = toDate(d);
  const p = mode === "utc"
    ? [t.getUTCFullYear(), t.getUTCMonth() + 1, t.getUTCDate(), t.getUTCHours(), t.getUTCMinutes()]
    : [t.getFullYear(), t.getMonth() + 1, t.getDate(), t.getHours(), t.getMinutes()];
  const z = (n) => String(n).padStart(2, "0");
  return `${p[0]}-${z(p[1])}-${z(p[2])}T${z(p[3])}:${z(p[4])}`;
}

// parseInput reads a datetime-local input's value as Unix milliseconds, or
// returns NaN for an empty or malformed one.
export function parseInput(v) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(v || "");
  if (!m) return NaN;
  const [y, mo, d, h, mi] = m.slice(1).map(Number);
  return mode === "utc" ? Date.UTC(y, mo - 1, d, h, mi) : new Date(y, mo - 1, d, h, mi).getTime();
}

// startOfDay returns the start of t's day in the current mode.
export function startOfDay(ms) {
  const t = new Date(ms);
  if (mode === "utc") return Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate());
  return new Date(t.getFullYear(), t.getMonth(), t.getDate()).getTime();
}
