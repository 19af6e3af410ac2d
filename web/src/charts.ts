// Graphs of a dashboard: turning query answers into uPlot charts (line,
// area, relative area) or one big number, with a synced crosshair, a hover
// tooltip, drag to zoom and per-graph errors.

import uPlot from "uplot";
import { FormatSpec, fmtTime, formatValue, h } from "./util";

export interface MetricQuery {
  name: string;
  fields?: string[];
  tags?: Record<string, string>;
  group_by?: string[];
  across?: string;
}
export interface Graph extends FormatSpec {
  title: string;
  description?: string;
  chart?: "line" | "area" | "relative_area" | "number";
  value?: "first" | "last" | "mean" | "sum" | "min" | "max";
  label?: string;
  draw_null_as_zero?: boolean;
  metrics: MetricQuery[];
}
export interface Dashboard {
  id?: string;
  title: string;
  description?: string;
  env?: string;
  graphs: Graph[];
}

/** One query of the batch and where its answer goes. */
export interface Planned {
  graph: number;
  metric: string;
  field: string;
  /** The graph metric's tag filters (for incident markers). */
  tags: Record<string, string>;
  query: Record<string, unknown>;
}

export interface Range {
  from: number;
  to: number;
  step: number;
}

const STEPS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

/** A range ending at the last whole minute, with at most ~500 buckets. */
export function makeRange(from: number, to: number): Range {
  const span = Math.max(60, to - from);
  const step = STEPS.find((s) => span / s <= 500) ?? 86400;
  return { from: Math.floor(from / step) * step, to: Math.floor(to / 60) * 60, step };
}

function globRe(pattern: string): RegExp {
  return new RegExp("^" + pattern.split("*").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*") + "$");
}

/** Whether `value` matches a pattern where `*` stands for any characters. */
export function globMatch(pattern: string, value: string): boolean {
  return pattern.includes("*") ? globRe(pattern).test(value) : pattern === value;
}

/** Expands `*` patterns against the catalogue's names. */
export function expand(pattern: string, names: string[]): string[] {
  if (!pattern.includes("*")) return [pattern];
  const re = globRe(pattern);
  return names.filter((n) => re.test(n));
}

/** Every query of a dashboard, for one `POST /api/v1/query`. */
export function plan(d: Dashboard, app: string, range: Range, names: string[]): Planned[] {
  const out: Planned[] = [];
  d.graphs.forEach((g, gi) => {
    for (const m of g.metrics) {
      for (const metric of expand(m.name, names)) {
        for (const field of m.fields?.length ? m.fields : [""]) {
          out.push({
            graph: gi,
            metric,
            field,
            tags: m.tags ?? {},
            query: {
              app,
              env: d.env,
              metric,
              field: field || undefined,
              from: range.from,
              to: range.to,
              step: range.step,
              tag: Object.entries(m.tags ?? {}).map(([k, v]) => `${k}:${v}`),
              group_by: m.group_by ?? [],
              across: m.across,
            },
          });
        }
      }
    }
  });
  return out;
}

export interface Line {
  label: string;
  values: (number | null)[];
}
export interface GraphData {
  times: number[];
  lines: Line[];
  errors: string[];
}

/** Label from the template: `%name%`, `%field%` and tag keys. */
export function label(tpl: string | undefined, metric: string, field: string, tags: Record<string, string>, many: boolean): string {
  if (tpl) {
    return tpl.replace(/%([A-Za-z0-9_.:/-]+)%/g, (_, k: string) =>
      k === "name" ? metric : k === "field" ? field : tags[k] ?? "",
    ).trim() || metric;
  }
  const parts = [metric];
  if (field && many) parts.push(field);
  parts.push(...Object.values(tags));
  return parts.join(" ");
}

/** Groups the batch's answers per graph, with null handling applied. */
export function collect(d: Dashboard, planned: Planned[], results: any[], range: Range): GraphData[] {
  const n = Math.max(0, Math.ceil((range.to - range.from) / range.step));
  const times = Array.from({ length: n }, (_, i) => range.from + i * range.step);
  const out: GraphData[] = d.graphs.map(() => ({ times, lines: [], errors: [] }));
  planned.forEach((p, i) => {
    const r = results[i] ?? { error: "no answer" };
    const g = d.graphs[p.graph];
    const gd = out[p.graph];
    if (r.error) {
      gd.errors.push(`${p.metric}${p.field ? " " + p.field : ""}: ${r.error}`);
      return;
    }
    const many = planned.filter((q) => q.graph === p.graph).length > 1;
    for (const s of r.series ?? []) {
      const byTs = new Map<number, number | null>(s.points.map((pt: [number, number | null]) => [pt[0], pt[1]]));
      let last: number | null = null;
      const values = times.map((t) => {
        const v = byTs.get(t) ?? null;
        if (v !== null) {
          last = v;
          return v;
        }
        return g.draw_null_as_zero ? 0 : last;
      });
      gd.lines.push({ label: label(g.label, p.metric, r.field || p.field, s.tags ?? {}, many), values });
    }
  });
  return out;
}

const PALETTE = ["#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#ec4899", "#14b8a6", "#84cc16", "#f97316", "#64748b"];

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

/** One big value over the range. */
function numberValue(values: (number | null)[], how: Graph["value"]): number | null {
  const xs = values.filter((v): v is number => v !== null);
  if (!xs.length) return null;
  switch (how) {
    case "first":
      return xs[0];
    case "mean":
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    case "sum":
      return xs.reduce((a, b) => a + b, 0);
    case "min":
      return Math.min(...xs);
    case "max":
      return Math.max(...xs);
    default:
      return xs[xs.length - 1];
  }
}

/** A time span shaded on a chart (an incident). */
export interface Marker {
  from: number;
  /** `null`: still open, shaded to the end of the range. */
  to: number | null;
  label: string;
}

/**
 * A dashed line with one value per time of the graph (`null`: no line
 * there), e.g. what an alert's baseline compares with; with `lower`, a
 * band shaded between the two edges.
 */
export interface Guide {
  /** Legend text. */
  label: string;
  /** The label of the data line it belongs to (it takes that line's colour). */
  line?: string;
  values: (number | null)[];
  lower?: (number | null)[];
}

export interface ChartHooks {
  /** Called with a time range when the user drags over a chart. */
  onZoom: (from: number, to: number) => void;
  /** A horizontal line (an alert's threshold). */
  threshold?: number | null;
  /** Shaded spans (incidents). */
  markers?: Marker[];
  /** Dashed lines or bands over the data (an alert's baseline). */
  guides?: Guide[];
}

const MARKER_FILL = "rgba(239, 68, 68, 0.16)";
const MARKER_EDGE = "rgba(239, 68, 68, 0.75)";

/** Traces `values` (at `times`) as one path, lifting the pen over nulls; returns the segments drawn. */
function tracePath(u: uPlot, times: number[], values: (number | null)[]): number {
  const ctx = u.ctx;
  let segments = 0;
  let pen = false;
  ctx.beginPath();
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      pen = false;
      return;
    }
    const x = u.valToPos(times[i], "x", true);
    const y = u.valToPos(v, "y", true);
    if (pen) ctx.lineTo(x, y);
    else {
      ctx.moveTo(x, y);
      segments++;
    }
    pen = true;
  });
  ctx.stroke();
  return segments;
}

/** Shades between a band's edges where both have values. */
function fillBand(u: uPlot, times: number[], upper: (number | null)[], lower: (number | null)[]) {
  const ctx = u.ctx;
  let start = -1;
  const close = (end: number) => {
    if (start < 0 || end - start < 2) return;
    ctx.beginPath();
    for (let i = start; i < end; i++) ctx.lineTo(u.valToPos(times[i], "x", true), u.valToPos(upper[i]!, "y", true));
    for (let i = end - 1; i >= start; i--) ctx.lineTo(u.valToPos(times[i], "x", true), u.valToPos(lower[i]!, "y", true));
    ctx.closePath();
    ctx.fill();
  };
  upper.forEach((v, i) => {
    const both = v !== null && lower[i] !== null && Number.isFinite(v) && Number.isFinite(lower[i]);
    if (both && start < 0) start = i;
    if (!both) {
      close(i);
      start = -1;
    }
  });
  close(upper.length);
}

/** Draws the baseline guides, each in the colour of the line with its label. */
function drawGuides(u: uPlot, box: HTMLElement, data: GraphData, guides: Guide[]) {
  const ctx = u.ctx;
  let segments = 0;
  guides.forEach((g) => {
    const li = data.lines.findIndex((l) => l.label === g.line);
    const color = PALETTE[Math.max(0, li) % PALETTE.length];
    if (g.lower) {
      ctx.fillStyle = color + "22";
      fillBand(u, data.times, g.values, g.lower);
    }
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
    segments += tracePath(u, data.times, g.values);
    if (g.lower) segments += tracePath(u, data.times, g.lower);
  });
  box.dataset.guideSegments = String(segments);
}

/** Draws the threshold line and the incident spans; records what it drew on `box` for tests. */
function drawOverlays(u: uPlot, box: HTMLElement, hooks: ChartHooks, data: GraphData) {
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  const xmin = u.scales.x.min ?? 0;
  const xmax = u.scales.x.max ?? 0;
  let shaded = 0;
  ctx.save();
  for (const m of hooks.markers ?? []) {
    const end = m.to ?? xmax;
    if (end < xmin || m.from > xmax) continue;
    const x0 = Math.max(left, u.valToPos(Math.max(m.from, xmin), "x", true));
    const x1 = Math.min(left + width, u.valToPos(Math.min(end, xmax), "x", true));
    ctx.fillStyle = MARKER_FILL;
    ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
    ctx.fillStyle = MARKER_EDGE;
    ctx.fillRect(x0, top, 2, height);
    shaded++;
  }
  box.dataset.markers = String(shaded);
  if (hooks.threshold !== undefined && hooks.threshold !== null) {
    const y = u.valToPos(hooks.threshold, "y", true);
    ctx.strokeStyle = MARKER_EDGE;
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + width, y);
    ctx.stroke();
    box.dataset.thresholdY = String(Math.round(y / devicePixelRatio));
  }
  if (hooks.guides?.length) drawGuides(u, box, data, hooks.guides);
  ctx.restore();
}

/** The lowest and highest value of the guides, to keep them in view. */
function guideExtent(guides: Guide[]): [number, number] | null {
  const all = guides.flatMap((g) => [...g.values, ...(g.lower ?? [])]).filter((v): v is number => v !== null && Number.isFinite(v));
  return all.length ? [Math.min(...all), Math.max(...all)] : null;
}

/** Draws a graph into `box` (replacing what was there); returns the uPlot, if any. */
export function drawGraph(box: HTMLElement, g: Graph, data: GraphData, step: number, hooks: ChartHooks): uPlot | null {
  box.replaceChildren();
  box.dataset.series = String(data.lines.length);
  box.dataset.points = String(data.lines.reduce((a, l) => a + l.values.filter((v) => v !== null).length, 0));
  for (const e of data.errors) box.append(h("div", { class: "graph-error", role: "alert" }, e));
  if (!data.lines.length) {
    if (!data.errors.length) box.append(h("div", { class: "empty" }, "No data in this range"));
    return null;
  }
  if (g.chart === "number") {
    box.append(
      h("div", { class: "numbers" },
        data.lines.map((l) =>
          h("div", { class: "number" },
            h("div", { class: "big" }, formatValue(numberValue(l.values, g.value), g, step)),
            data.lines.length > 1 || g.label ? h("div", { class: "muted" }, l.label) : null,
          ),
        ),
      ),
    );
    return null;
  }
  const relative = g.chart === "relative_area";
  // Areas stack: each line is drawn on top of the ones before it.
  const area = g.chart === "area" || relative;
  let plotted = data.lines.map((l) => l.values);
  if (area) {
    let parts = plotted;
    if (relative) {
      // Each line's share of the total.
      const totals = data.times.map((_, i) => data.lines.reduce((a, l) => a + (l.values[i] ?? 0), 0));
      parts = data.lines.map((l) => l.values.map((v, i) => (v === null || !totals[i] ? null : (100 * v) / totals[i])));
    }
    const stacked: (number | null)[][] = [];
    parts.forEach((s, j) => stacked.push(s.map((v, i) => (v === null ? null : v + (j ? stacked[j - 1][i] ?? 0 : 0)))));
    plotted = stacked;
    const top = stacked[stacked.length - 1].filter((v): v is number => v !== null);
    box.dataset.stackMax = top.length ? String(Math.max(...top)) : "";
  }
  const fmt: typeof g = relative ? { ...g, format: "percent" } : g;
  // The tooltip shows each line's own value (its share for relative areas).
  const shown = (si: number, i: number): number | null => {
    if (!relative) return data.lines[si].values[i];
    const cur = plotted[si][i];
    const below = si ? plotted[si - 1][i] ?? 0 : 0;
    return cur === null ? null : cur - below;
  };
  // The top of the stack is drawn first so the lower areas show over it.
  const order = area ? [...data.lines.keys()].reverse() : [...data.lines.keys()];
  const guides = hooks.guides ?? [];
  const guided = guideExtent(guides);
  const guideColor = (g: Guide) => PALETTE[Math.max(0, data.lines.findIndex((l) => l.label === g.line)) % PALETTE.length];
  // What the guides hold, by time, for tests: [[t, value, lower?], ...] per guide.
  box.dataset.guides = JSON.stringify(guides.map((g) => ({
    label: g.label,
    points: data.times.flatMap((t, i) => (g.values[i] === null ? [] : [g.lower ? [t, g.values[i], g.lower[i]] : [t, g.values[i]]])),
  })));
  const width = Math.max(200, box.clientWidth || 400);
  const tip = h("div", { class: "tooltip", hidden: true });
  const axisColor = cssVar("--muted");
  const grid = cssVar("--grid");
  const opts: uPlot.Options = {
    width,
    height: 200,
    legend: { show: false },
    cursor: {
      sync: { key: "dashboard", setSeries: false },
      drag: { x: true, y: false, setScale: false },
      points: { size: 6 },
    },
    scales: {
      x: { time: true },
      y: relative
        ? { range: [0, 100] }
        : {
            range: (_u, min, max) => {
              // The threshold stays in view even when the data is far from it.
              // So do the guides.
              const t = hooks.threshold ?? null;
              const lo = Math.min(0, min, t ?? 0, guided?.[0] ?? 0);
              const hi = Math.max(max, t ?? max, guided?.[1] ?? max);
              return [lo, hi > 0 ? hi * 1.1 : 1];
            },
          },
    },
    axes: [
      { stroke: axisColor, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
      {
        stroke: axisColor,
        grid: { stroke: grid, width: 1 },
        ticks: { stroke: grid },
        size: 60,
        values: (_u, vals) => vals.map((v) => formatValue(v, fmt, step)),
      },
    ],
    series: [
      {},
      ...order.map((li) => {
        const color = PALETTE[li % PALETTE.length];
        return {
          label: data.lines[li].label,
          stroke: color,
          width: 1.5,
          fill: area ? color + (relative ? "cc" : "aa") : undefined,
          spanGaps: false,
          points: { show: false },
        } as uPlot.Series;
      }),
    ],
    hooks: {
      setCursor: [
        (u) => {
          const i = u.cursor.idx;
          if (i === null || i === undefined || !box.matches(":hover")) {
            tip.hidden = true;
            return;
          }
          const rows = data.lines
            .map((l, li) => ({ l, li, v: shown(li, i) }))
            .sort((a, b) => (b.v ?? -Infinity) - (a.v ?? -Infinity));
          tip.replaceChildren(
            h("div", { class: "tip-time" }, fmtTime(data.times[i], true)),
            ...rows.map((r) =>
              h("div", { class: "tip-row" },
                h("span", { class: "swatch", style: `background:${PALETTE[r.li % PALETTE.length]}` }),
                h("span", { class: "tip-label" }, r.l.label),
                h("span", { class: "tip-value" }, formatValue(r.v, fmt, step)),
              ),
            ),
            // What a baseline compares the minute with: a level, or a band's edges.
            ...guides.filter((g) => g.values[i] !== null).map((g) =>
              h("div", { class: "tip-row tip-guide" },
                h("span", { class: "swatch swatch-dashed", style: `border-color:${guideColor(g)}` }),
                h("span", { class: "tip-label" }, g.label),
                h("span", { class: "tip-value" },
                  g.lower ? `${formatValue(g.lower[i], fmt, step)} – ${formatValue(g.values[i], fmt, step)}` : formatValue(g.values[i], fmt, step)),
              ),
            ),
          );
          tip.hidden = false;
          const left = u.valToPos(data.times[i], "x");
          tip.style.left = `${Math.min(left + 12, Math.max(0, u.over.clientWidth - tip.offsetWidth))}px`;
        },
      ],
      draw: [(u) => drawOverlays(u, box, hooks, data)],
      setSelect: [
        (u) => {
          if (u.select.width > 4) {
            const from = u.posToVal(u.select.left, "x");
            const to = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            hooks.onZoom(Math.floor(from), Math.ceil(to));
          }
        },
      ],
    },
  };
  const plot = new uPlot(opts, [data.times, ...order.map((li) => plotted[li])] as uPlot.AlignedData, box);
  plot.over.append(tip);
  plot.over.addEventListener("mouseleave", () => (tip.hidden = true));
  // Incidents in the range are named under the chart (the canvas only shades them).
  const first = data.times[0] ?? 0;
  const last = (data.times[data.times.length - 1] ?? 0) + step;
  const incidents = [...new Set((hooks.markers ?? []).filter((m) => m.from < last && (m.to ?? last) >= first).map((m) => m.label))];
  box.append(
    h("div", { class: "legend" },
      data.lines.map((l, li) =>
        h("span", { class: "legend-item" }, h("span", { class: "swatch", style: `background:${PALETTE[li % PALETTE.length]}` }), l.label),
      ),
      guides.slice(0, 5).map((g) =>
        h("span", { class: "legend-item legend-guide" }, h("span", { class: "swatch swatch-dashed", style: `border-color:${guideColor(g)}` }), g.label),
      ),
      incidents.slice(0, 5).map((label) =>
        h("span", { class: "legend-item legend-incident" }, h("span", { class: "swatch", style: `background:${MARKER_EDGE}` }), `incident: ${label}`),
      ),
      incidents.length > 5 ? h("span", { class: "legend-item legend-incident" }, `and ${incidents.length - 5} more incidents`) : null,
    ),
  );
  return plot;
}
