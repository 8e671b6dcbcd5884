// The key epochs of the reach tiers (docs/semantics.md, Reach tiers): days
// start at the service's day start, a whole number of hours after 00:00
// UTC, whatever the browser's time zone; weeks are ISO weeks, from Monday at
// the day start. The minute tier counts within one day, the hour tier whole
// hours within one week, and no count spans two epochs: the reach panel
// uses this calendar to ask only for windows one tier can count.

const hourMs = 3600000;
const dayMs = 24 * hourMs;

// floorHour rounds t (Unix ms) down to a whole UTC hour.
export function floorHour(t) {
  return Math.floor(t / hourMs) * hourMs;
}

export class Calendar {
  // dayStart is "HH:MM" after 00:00 UTC, as GET /v1/epochs says it.
  constructor(dayStart) {
    const m = /^(\d{2}):00$/.exec(dayStart || "");
    if (!m || Number(m[1]) > 23) throw new Error(`day start ${JSON.stringify(dayStart)} is not a whole hour HH:00`);
    this.dayStartText = dayStart;
    this.dayStart = Number(m[1]) * hourMs;
  }

  // day returns the day epoch that holds t: {start, end}, Unix ms.
  day(t) {
    const n = Math.floor((t - this.dayStart) / dayMs);
    const start = n * dayMs + this.dayStart;
    return { start, end: start + dayMs };
  }

  // week returns the ISO week epoch that holds t. Day 0, 1970-01-01, was a
  // Thursday: day n is (n + 3) mod 7 days after a Monday.
  week(t) {
    const n = Math.floor((t - this.dayStart) / dayMs);
    const monday = n - (((n + 3) % 7) + 7) % 7;
    const start = monday * dayMs + this.dayStart;
    return { start, end: start + 7 * dayMs };
  }

  // recent returns the window one tier can count that is closest to the
  // last len ms before to (the end of the newest sealed minute): the window
  // itself when it lies within the current day; else, whichever covers
  // more of it, the current day up to to ("day"), or the whole hours
  // around it within one week ("hours"), which ends up to 59 minutes
  // earlier. how says which.
  recent(to, len) {
    const from = to - len;
    const day = this.day(to - 1);
    if (from >= day.start) return { from, to, how: "asked" };
    const clipped = { from: day.start, to, how: "day" };
    const hf = floorHour(from);
    const ht = floorHour(to);
    if (ht <= hf || ht > this.week(hf).end || ht - from <= to - day.start) return clipped;
    return { from: hf, to: ht, how: "hours" };
  }

  // today is the current day epoch up to to.
  today(to) {
    return { from: this.day(to - 1).start, to, how: "day" };
  }

  // thisWeek is the current week epoch up to to: in whole hours (the hour
  // tier), or up to to on its first day, which the minute tier counts.
  thisWeek(to) {
    const week = this.week(to - 1);
    if (week.start === this.day(to - 1).start) return { from: week.start, to, how: "day" };
    return { from: week.start, to: floorHour(to), how: "hours" };
  }
}
