// The form editor of a dashboard: title, description, env, and per graph
// its chart, format, label template, null handling and metrics (name or
// pattern, fields, tag filters, group-by, across). It reads and writes the
// same JSON as the API, so the text editor and the form show one definition.

import { Dashboard, Graph, MetricQuery } from "./charts";
import { FIELDS, h, Metric } from "./util";

const CHARTS = ["line", "area", "relative_area", "number"];
const VALUES = ["last", "first", "mean", "sum", "min", "max"];
const FORMATS = ["number", "percent", "throughput", "duration", "size"];
const UNITS: Record<string, string[]> = { duration: ["ms", "ns", "us", "s", "min", "h"], size: ["byte", "bit", "KiB", "MiB", "GiB"] };
const ACROSS = ["", "sum", "mean", "min", "max"];

function options(values: string[], labels: Record<string, string> = {}): HTMLOptionElement[] {
  return values.map((v) => h("option", { value: v }, labels[v] ?? (v || "(default)")));
}

function list(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean);
}

function tagsText(tags: Record<string, string> | undefined): string {
  return Object.entries(tags ?? {}).map(([k, v]) => `${k}:${v}`).join(" ");
}

function parseTags(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of list(text)) {
    const i = t.indexOf(":");
    if (i > 0) out[t.slice(0, i)] = t.slice(i + 1);
    else out[t] = "";
  }
  return out;
}

function field(label: string, control: HTMLElement, hint?: HTMLElement | string): HTMLElement {
  return h("label", { class: "field" }, h("span", {}, label), control, hint ? h("span", { class: "tags" }, hint) : null);
}

/** A control with a `read()` that gives back its part of the definition. */
interface Part<T> {
  el: HTMLElement;
  read: () => T;
}

function metricPart(m: MetricQuery, catalogue: Metric[], onRemove: (el: HTMLElement) => void): Part<MetricQuery> {
  const name = h("input", { value: m.name, list: "metric-names", "aria-label": "metric name", placeholder: "order_count or order_*" });
  const fields = h("input", { value: (m.fields ?? []).join(", "), "aria-label": "fields", placeholder: "(the kind's default)" });
  const tags = h("input", { value: tagsText(m.tags), "aria-label": "tag filters", placeholder: "region:eu-*" });
  const groupBy = h("input", { value: (m.group_by ?? []).join(", "), "aria-label": "group by", placeholder: "region" });
  const across = h("select", { "aria-label": "across" }, options(ACROSS));
  across.value = m.across ?? "";
  const fieldHint = h("span");
  const tagHint = h("span");
  // What the catalogue knows of the named metric: its fields and tag keys.
  const hints = () => {
    const found = catalogue.filter((c) => c.name === name.value);
    const kind = found[0]?.kind;
    fieldHint.textContent = kind ? `${kind}: ${FIELDS[kind].join(", ")}` : "";
    const keys = [...new Set(found.flatMap((c) => Object.keys(c.tags)))];
    tagHint.textContent = keys.length ? `tags: ${keys.join(", ")}` : "";
  };
  name.addEventListener("input", hints);
  hints();
  const el: HTMLElement = h("div", { class: "metric-part" },
    field("metric", name),
    field("fields", fields, fieldHint),
    field("tags", tags),
    field("group by", groupBy, tagHint),
    field("across (gauges)", across),
    h("button", { type: "button", class: "danger remove-metric", onclick: () => onRemove(el) }, "Remove metric"),
  );
  return {
    el,
    read: () => {
      const out: MetricQuery = { name: name.value.trim() };
      const f = list(fields.value);
      if (f.length) out.fields = f;
      const t = parseTags(tags.value);
      if (Object.keys(t).length) out.tags = t;
      const g = list(groupBy.value);
      if (g.length) out.group_by = g;
      if (across.value) out.across = across.value;
      return out;
    },
  };
}

function graphPart(g: Graph, catalogue: Metric[], parts: Part<Graph>[], box: HTMLElement): Part<Graph> {
  const title = h("input", { value: g.title, "aria-label": "graph title", class: "wide" });
  const description = h("input", { value: g.description ?? "", "aria-label": "graph description", class: "wide" });
  const chart = h("select", { "aria-label": "chart" }, options(CHARTS, { relative_area: "relative area" }));
  chart.value = g.chart ?? "line";
  const value = h("select", { "aria-label": "number value" }, options(VALUES));
  value.value = g.value ?? "last";
  const format = h("select", { "aria-label": "format" }, options(FORMATS));
  format.value = g.format ?? "number";
  const unit = h("select", { "aria-label": "format input" });
  const label = h("input", { value: g.label ?? "", "aria-label": "label template", placeholder: "%name% %region%" });
  const nullZero = h("input", { type: "checkbox", checked: !!g.draw_null_as_zero, "aria-label": "draw missing minutes as 0" });
  const valueField = field("number shows", value);
  const unitField = field("stored in", unit);
  const sync = () => {
    valueField.hidden = chart.value !== "number";
    const units = UNITS[format.value];
    unitField.hidden = !units;
    if (units) {
      const keep = unit.value || g.format_input || units[0];
      unit.replaceChildren(...options(units));
      unit.value = units.includes(keep) ? keep : units[0];
    }
  };
  chart.addEventListener("change", sync);
  format.addEventListener("change", sync);
  sync();
  const metrics: Part<MetricQuery>[] = [];
  const metricBox = h("div", { class: "metric-parts" });
  const removeMetric = (el: HTMLElement) => {
    const i = metrics.findIndex((m) => m.el === el);
    if (i >= 0) metrics.splice(i, 1);
    el.remove();
  };
  const addMetric = (m: MetricQuery) => {
    const p = metricPart(m, catalogue, removeMetric);
    metrics.push(p);
    metricBox.append(p.el);
  };
  g.metrics.forEach(addMetric);
  const move = (by: number) => {
    const i = parts.indexOf(self);
    const j = i + by;
    if (j < 0 || j >= parts.length) return;
    parts.splice(i, 1);
    parts.splice(j, 0, self);
    box.replaceChildren(...parts.map((p) => p.el));
  };
  const el = h("fieldset", { class: "card graph-part" },
    h("div", { class: "list-item" },
      field("graph title", title),
      h("span", { class: "spacer" }),
      h("button", { type: "button", title: "move up", "aria-label": "move up", onclick: () => move(-1) }, "↑"),
      h("button", { type: "button", title: "move down", "aria-label": "move down", onclick: () => move(1) }, "↓"),
      h("button", { type: "button", class: "danger remove-graph", onclick: () => {
        parts.splice(parts.indexOf(self), 1);
        el.remove();
      } }, "Remove graph"),
    ),
    field("description", description),
    h("div", { class: "list-item" },
      field("chart", chart), valueField, field("format", format), unitField,
      field("label", label, "%name%, %field% and tag keys like %region%"),
      h("label", { class: "field checkbox" }, nullZero, h("span", {}, "draw missing minutes as 0")),
    ),
    metricBox,
    h("button", { type: "button", class: "add-metric", onclick: () => addMetric({ name: "" }) }, "Add metric"),
  );
  const self: Part<Graph> = {
    el,
    read: () => {
      const out: Graph = { title: title.value, metrics: metrics.map((m) => m.read()) };
      if (description.value.trim()) out.description = description.value;
      if (chart.value !== "line") out.chart = chart.value as Graph["chart"];
      if (chart.value === "number" && value.value !== "last") out.value = value.value as Graph["value"];
      if (format.value !== "number") out.format = format.value;
      if (UNITS[format.value]) out.format_input = unit.value;
      if (label.value.trim()) out.label = label.value;
      if (nullZero.checked) out.draw_null_as_zero = true;
      return out;
    },
  };
  return self;
}

/** The whole dashboard as a form. */
export function dashboardForm(d: Dashboard, catalogue: Metric[]): Part<Dashboard> {
  const title = h("input", { value: d.title, "aria-label": "dashboard title", class: "wide" });
  const description = h("input", { value: d.description ?? "", "aria-label": "dashboard description", class: "wide" });
  const envs = [...new Set([...catalogue.map((m) => m.env), d.env ?? ""].filter(Boolean))];
  const env = h("select", { "aria-label": "dashboard env" }, h("option", { value: "" }, "every env"), envs.map((e) => h("option", { value: e }, e)));
  env.value = d.env ?? "";
  const parts: Part<Graph>[] = [];
  const graphBox = h("div", { class: "graph-parts" });
  const addGraph = (g: Graph) => {
    const p = graphPart(g, catalogue, parts, graphBox);
    parts.push(p);
    graphBox.append(p.el);
  };
  d.graphs.forEach(addGraph);
  const names = h("datalist", { id: "metric-names" }, [...new Set(catalogue.map((m) => m.name))].map((n) => h("option", { value: n })));
  const el = h("div", { class: "dashboard-form" },
    names,
    h("div", { class: "card" },
      field("title", title),
      field("description", description),
      field("env", env),
    ),
    graphBox,
    h("button", { type: "button", id: "add-graph", onclick: () => addGraph({ title: "New graph", metrics: [{ name: "" }] }) }, "Add graph"),
  );
  return {
    el,
    read: () => {
      const out: Dashboard = { title: title.value, graphs: parts.map((p) => p.read()) };
      if (description.value.trim()) out.description = description.value;
      if (env.value) out.env = env.value;
      return out;
    },
  };
}
