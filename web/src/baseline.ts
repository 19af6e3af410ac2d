// What an alert's baseline condition compares each minute with, computed
// from query answers as the server's evaluator does (crates/alerts
// condition.rs): the week-ago trigger level, or the rolling band.

import { Guide } from "./charts";

export const WEEK = 7 * 86400;
/** Fewest minutes with data a rolling window needs, as on the server. */
const MIN_ROLLING_POINTS = 2;

/** One series of a query answer: its line label and its values by time. */
export interface Raw {
  line: string;
  byTs: Map<number, number>;
}

/** Values by time of a query answer's series (minutes without data left out). */
export function byTime(points: [number, number | null][], shift = 0): Map<number, number> {
  const m = new Map<number, number>();
  for (const [t, v] of points) if (v !== null) m.set(t + shift, v);
  return m;
}

/**
 * The value at which `value op change_pct` starts to hold against the same
 * minute a week earlier: `ago + |ago| * change_pct / 100` (the change is
 * taken relative to `|ago|`). No week-ago data: no level.
 */
export function weekAgoLevel(ago: number | undefined, changePct: number): number | null {
  return ago === undefined ? null : ago + (Math.abs(ago) * changePct) / 100;
}

/**
 * Mean and population standard deviation of the minutes with data in the
 * `window` minutes before `t`; null with fewer than two.
 */
export function rollingStats(byTs: Map<number, number>, t: number, window: number): { mean: number; sd: number } | null {
  const xs: number[] = [];
  for (let m = t - window * 60; m < t; m += 60) {
    const v = byTs.get(m);
    if (v !== undefined) xs.push(v);
  }
  if (xs.length < MIN_ROLLING_POINTS) return null;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, v) => a + (v - mean) ** 2, 0) / xs.length;
  return { mean, sd: Math.sqrt(variance) };
}

/** For each series a dashed line of the week-ago values scaled to the trigger level. */
export function weekAgoGuides(weekAgo: Raw[], times: number[], changePct: number): Guide[] {
  const pct = `${changePct >= 0 ? "+" : "−"}${Math.abs(changePct)}%`;
  return weekAgo.map((s) => ({
    label: `${s.line}: a week ago ${pct}`,
    line: s.line,
    values: times.map((t) => weekAgoLevel(s.byTs.get(t), changePct)),
  }));
}

/** For each series the band mean ± k deviations of the `window` minutes before each minute. */
export function rollingGuides(series: Raw[], times: number[], window: number, deviations: number): Guide[] {
  return series.map((s) => {
    const stats = times.map((t) => rollingStats(s.byTs, t, window));
    return {
      label: `${s.line}: ${window}-minute mean ± ${deviations} σ`,
      line: s.line,
      values: stats.map((x) => (x ? x.mean + deviations * x.sd : null)),
      lower: stats.map((x) => (x ? x.mean - deviations * x.sd : null)),
    };
  });
}
