// Alert pages: the list with each alert's state per series and the
// notifications waiting for delivery; the editor (a form, a preview chart
// with the threshold and the incidents the alert would have opened, a test
// notification per channel); the incident history.

import uPlot from "uplot";
import { byTime, Raw, rollingGuides, WEEK, weekAgoGuides } from "./baseline";
import { collect, Dashboard, drawGraph, globMatch, Graph, Guide, label, Marker, plan, Range } from "./charts";
import { api, ApiError, FIELDS, fmtTime, formatValue, h, Metric, qs } from "./util";

/** What the alert pages need from the application shell. */
export interface Ctx {
  app: string;
  layout: (active: string, ...content: (Node | string)[]) => void;
  go: (hash: string) => void;
  rerender: () => void;
  catalogue: () => Promise<Metric[]>;
  errorBox: (e: unknown) => HTMLElement;
  /** Runs when the view is left. */
  onLeave: (f: () => void) => void;
}

type Op = ">" | ">=" | "<" | "<=" | "==" | "!=";
const OPS: Op[] = [">", ">=", "<", "<=", "==", "!="];

interface Condition {
  baseline?: "week_ago" | "rolling";
  op: Op;
  threshold?: number;
  change_pct?: number;
  window_minutes?: number;
  deviations?: number;
}

type Channel =
  | { type: "webhook"; url: string; secret?: string }
  | { type: "slack"; url: string }
  | { type: "email"; to: string[] };

interface AlertDef {
  name: string;
  env?: string;
  metric: string;
  field?: string;
  tags?: Record<string, string>;
  condition: Condition;
  warmup_minutes?: number;
  cooldown_minutes?: number;
  reminder_minutes?: number;
  no_data?: "zero" | "keep" | "alert";
  description?: string;
  channels?: Channel[];
  enabled?: boolean;
}

type Phase = "closed" | "warming_up" | "open" | "cooling_down";

interface Alert extends AlertDef {
  id: string;
  evaluated_through: number | null;
  series: { env: string; tags: Record<string, string>; state: Phase; incident_id: string | null }[];
}

export interface Incident {
  id: string;
  alert_id: string;
  alert: string;
  env: string;
  metric: string;
  field: string | null;
  tags: Record<string, string>;
  state: "open" | "closed";
  started_at: number;
  opened_at: number;
  closed_at: number | null;
  last: number | null;
  peak: number | null;
  mean: number | null;
  no_data: boolean;
}

const PHASE_TEXT: Record<Phase, string> = { closed: "closed", warming_up: "warming up", open: "open", cooling_down: "cooling down" };
const PHASE_RANK: Record<Phase, number> = { closed: 0, warming_up: 1, cooling_down: 2, open: 3 };

function badge(state: string, text = state): HTMLElement {
  return h("span", { class: `badge state-${state}`, "data-state": state }, text);
}

function tagText(tags: Record<string, string> | undefined): string {
  const parts = Object.entries(tags ?? {}).map(([k, v]) => `${k}=${v}`);
  return parts.join(" ");
}

function series(env: string, tags: Record<string, string>): string {
  return [env, tagText(tags)].filter(Boolean).join(" · ") || "(all)";
}

export function conditionText(c: Condition): string {
  if (c.baseline === "week_ago") return `change vs a week ago ${c.op} ${c.change_pct}%`;
  if (c.baseline === "rolling") return `${c.op} ${c.window_minutes}-minute mean ${c.op.startsWith("<") ? "−" : "+"} ${c.deviations} σ`;
  return `${c.op} ${c.threshold}`;
}

function value(v: number | null | undefined): string {
  return formatValue(v, {}, 60);
}

function when(ts: number | null | undefined): string {
  return ts === null || ts === undefined ? "–" : fmtTime(ts, true);
}

function duration(from: number, to: number | null): string {
  const s = (to ?? Date.now() / 1000) - from;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

/** `region:eu-* payment:card` as a tag filter map. */
function parseTags(text: string): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const t of text.split(/\s+/).filter(Boolean)) {
    const i = t.indexOf(":");
    if (i > 0) tags[t.slice(0, i)] = t.slice(i + 1);
    else tags[t] = "";
  }
  return tags;
}

// ---- the list ----

export async function alertsView(ctx: Ctx) {
  const [list, outbox] = await Promise.all([
    api("GET", `/api/v1/alerts${qs({ app: ctx.app })}`),
    // Only an admin key of all apps may read the outbox.
    api("GET", "/api/v1/alerts/outbox").catch((e: unknown) => e),
  ]);
  const alerts: Alert[] = list.alerts;
  const names = new Map(alerts.map((a) => [a.id, a.name]));
  ctx.layout("alerts",
    h("div", { class: "toolbar" },
      h("h1", {}, "Alerts"),
      h("span", { class: "spacer" }),
      h("button", { class: "primary", onclick: () => ctx.go("#/alerts/new") }, "New alert"),
      h("a", { href: "#/incidents" }, "Incident history"),
    ),
    alerts.length
      ? h("div", { class: "table-wrap" },
          h("table", { class: "alerts" },
            h("thead", {}, h("tr", {}, h("th", {}, "alert"), h("th", {}, "condition"), h("th", {}, "state"), h("th", {}, "series"), h("th", {}, "evaluated through"), h("th", {}, ""))),
            h("tbody", {}, alerts.map(alertRow)),
          ),
        )
      : h("div", { class: "card empty" }, "No alerts yet."),
    h("h2", { class: "section" }, "Notifications waiting for delivery"),
    outboxTable(outbox, names),
  );
}

function alertRow(a: Alert): HTMLElement {
  const overall: string = a.enabled === false
    ? "disabled"
    : a.series.reduce<Phase>((w, s) => (PHASE_RANK[s.state] > PHASE_RANK[w] ? s.state : w), "closed");
  const label = overall === "disabled" ? "disabled" : PHASE_TEXT[overall as Phase];
  return h("tr", { "data-alert": a.id },
    h("td", {},
      h("a", { href: `#/alerts/edit/${encodeURIComponent(a.id)}`, class: "alert-name" }, a.name),
      a.description ? h("div", { class: "tags" }, a.description) : null,
    ),
    h("td", {}, `${a.metric}${a.field ? " " + a.field : ""} ${conditionText(a.condition)}`,
      Object.keys(a.tags ?? {}).length ? h("div", { class: "tags" }, tagText(a.tags)) : null),
    h("td", { class: "overall" }, badge(overall, label)),
    h("td", {},
      a.series.length
        ? a.series.map((s) =>
            h("div", { class: "series-state" }, badge(s.state, PHASE_TEXT[s.state]), " ", h("span", { class: "tags" }, series(s.env, s.tags))))
        : h("span", { class: "muted" }, "not evaluated yet"),
    ),
    h("td", { class: "muted" }, when(a.evaluated_through)),
    h("td", {}, h("a", { href: `#/incidents?${new URLSearchParams({ alert: a.id })}` }, "incidents")),
  );
}

function outboxTable(outbox: any, names: Map<string, string>): HTMLElement {
  if (outbox instanceof ApiError && outbox.status === 403) {
    return h("p", { class: "muted" }, "Delivery failures show to an admin key of all apps.");
  }
  if (outbox instanceof Error) return h("div", { class: "error" }, outbox.message);
  const rows: any[] = outbox.notifications;
  if (!rows.length) return h("p", { class: "muted", id: "outbox-empty" }, "None: every notification was delivered.");
  return h("div", { class: "table-wrap" },
    h("table", { id: "outbox" },
      h("thead", {}, h("tr", {}, h("th", {}, "alert"), h("th", {}, "event"), h("th", {}, "channel"), h("th", {}, "attempts"), h("th", {}, "last error"), h("th", {}, "next attempt"))),
      h("tbody", {},
        rows.map((n) =>
          h("tr", { "data-outbox": String(n.id) },
            h("td", {}, names.get(n.alert_id) ?? String(n.alert_id ?? "")),
            h("td", {}, String(n.event ?? "")),
            h("td", {}, String(n.channel ?? "")),
            h("td", {}, String(n.attempts)),
            h("td", { class: n.last_error ? "delivery-error" : "muted" }, n.last_error ?? "not tried yet"),
            h("td", { class: "muted" }, when(n.due)),
          ),
        ),
      ),
    ),
  );
}

// ---- the editor ----

const TEMPLATE: AlertDef = {
  name: "",
  metric: "",
  condition: { op: ">", threshold: 0 },
  warmup_minutes: 5,
  cooldown_minutes: 5,
  reminder_minutes: 0,
  no_data: "zero",
  channels: [],
};

const PREVIEW_RANGES: [string, number][] = [["1h", 3600], ["6h", 21600], ["24h", 86400]];

function labelled(text: string, control: HTMLElement, hint?: string): HTMLElement[] {
  const id = `f-${text.replace(/\W+/g, "-")}`;
  control.id = id;
  return [h("label", { for: id }, text), h("div", {}, control, hint ? h("div", { class: "tags" }, hint) : null)];
}

function numberInput(v: number | undefined, attrs: Record<string, unknown> = {}): HTMLInputElement {
  return h("input", { type: "number", step: "any", value: v === undefined ? "" : String(v), ...attrs });
}

function numberOf(i: HTMLInputElement): number | undefined {
  return i.value.trim() === "" ? undefined : Number(i.value);
}

/** One channel's inputs, its test button and the test's answer. */
function channelRow(c: Channel, app: string, alertId: string | undefined, onRemove: (row: HTMLElement) => void): { el: HTMLElement; read: () => Channel } {
  const type = h("select", { "aria-label": "channel type" }, ["webhook", "slack", "email"].map((t) => h("option", { value: t }, t)));
  type.value = c.type;
  const target = h("input", { class: "wide", "aria-label": "channel target" });
  target.value = c.type === "email" ? c.to.join(", ") : c.url;
  const secret = h("input", { "aria-label": "webhook secret", placeholder: "secret (optional)", value: c.type === "webhook" ? c.secret ?? "" : "" });
  const result = h("span", { class: "test-result", role: "status" });
  const sync = () => {
    target.placeholder = type.value === "email" ? "ops@example.com, oncall@example.com" : "https://…";
    secret.hidden = type.value !== "webhook";
  };
  type.addEventListener("change", sync);
  sync();
  const read = (): Channel => {
    if (type.value === "email") return { type: "email", to: target.value.split(/[\s,;]+/).filter(Boolean) };
    if (type.value === "slack") return { type: "slack", url: target.value.trim() };
    const s = secret.value;
    return s ? { type: "webhook", url: target.value.trim(), secret: s } : { type: "webhook", url: target.value.trim() };
  };
  const test = async () => {
    result.className = "test-result muted";
    result.textContent = "sending…";
    try {
      // The channel as it is in the form (maybe not saved yet); a saved
      // alert's id puts its name in the message.
      await api("POST", `/api/v1/alerts/test-notification${qs({ app })}`, JSON.stringify({ channel: read(), alert: alertId }));
      result.className = "test-result ok";
      result.textContent = "test notification sent";
    } catch (e) {
      result.className = "test-result delivery-error";
      result.textContent = e instanceof Error ? e.message : String(e);
    }
  };
  const el: HTMLElement = h("div", { class: "channel-row" },
    type, target, secret,
    h("button", { type: "button", class: "test", onclick: test }, "Send test"),
    h("button", { type: "button", class: "danger", onclick: () => onRemove(el) }, "Remove"),
    result,
  );
  return { el, read };
}

/** The alert as a form; `read()` gives the definition it shows. */
function alertForm(def: AlertDef, metrics: Metric[], app: string, id: string | undefined, onEdit: () => void, onSave: () => void): { el: HTMLElement; read: () => AlertDef } {
  const kinds = new Map(metrics.map((m) => [m.name, m.kind]));
  const name = h("input", { class: "wide", value: def.name, required: true });
  const metricNames = [...new Set([...metrics.map((m) => m.name), def.metric].filter(Boolean))].sort();
  const metric = h("select", {}, metricNames.map((n) => h("option", { value: n }, `${n} (${kinds.get(n) ?? "no data yet"})`)));
  metric.value = def.metric;
  const field = h("select");
  const fillFields = () => {
    const kind = kinds.get(metric.value);
    const list = kind ? FIELDS[kind] : [...new Set(Object.values(FIELDS).flat())];
    const keep = field.value || def.field || "";
    field.replaceChildren(h("option", { value: "" }, kind ? `(default: ${list[0]})` : "(default)"), ...list.map((f) => h("option", { value: f }, f)));
    field.value = list.includes(keep) ? keep : "";
  };
  fillFields();
  metric.addEventListener("change", fillFields);
  const envs = [...new Set(metrics.map((m) => m.env))];
  const env = h("select", {}, h("option", { value: "" }, "every env"), [...new Set([...envs, def.env ?? ""].filter(Boolean))].map((e) => h("option", { value: e }, e)));
  env.value = def.env ?? "";
  const tags = h("input", { class: "wide", placeholder: "region:eu-* payment:card", value: Object.entries(def.tags ?? {}).map(([k, v]) => `${k}:${v}`).join(" ") });
  const c = def.condition;
  const base = h("select", { "aria-label": "condition type" }, h("option", { value: "" }, "threshold"), h("option", { value: "week_ago" }, "change vs a week ago (%)"), h("option", { value: "rolling" }, "rolling mean ± deviations"));
  base.value = c.baseline ?? "";
  const op = h("select", { "aria-label": "operator" }, OPS.map((o) => h("option", { value: o }, o)));
  op.value = c.op;
  const threshold = numberInput(c.threshold, { "aria-label": "threshold", placeholder: "threshold" });
  const changePct = numberInput(c.change_pct, { "aria-label": "change percent", placeholder: "change %" });
  const windowMin = numberInput(c.window_minutes, { "aria-label": "window minutes", placeholder: "window minutes", min: 2 });
  const deviations = numberInput(c.deviations, { "aria-label": "deviations", placeholder: "deviations", min: 0 });
  const syncCondition = () => {
    threshold.hidden = base.value !== "";
    changePct.hidden = base.value !== "week_ago";
    windowMin.hidden = deviations.hidden = base.value !== "rolling";
  };
  base.addEventListener("change", syncCondition);
  syncCondition();
  const warmup = numberInput(def.warmup_minutes ?? 0, { min: 0 });
  const cooldown = numberInput(def.cooldown_minutes ?? 0, { min: 0 });
  const reminder = numberInput(def.reminder_minutes ?? 0, { min: 0 });
  const noData = h("select", {},
    h("option", { value: "zero" }, "counts as 0"),
    h("option", { value: "keep" }, "is skipped (state kept)"),
    h("option", { value: "alert" }, "counts as holding (no-data incident)"));
  noData.value = def.no_data ?? "zero";
  const description = h("textarea", { rows: 2, class: "wide", value: def.description ?? "" });
  const enabled = h("input", { type: "checkbox", checked: def.enabled !== false });

  const channelBox = h("div", { class: "channels" });
  const rows: { el: HTMLElement; read: () => Channel }[] = [];
  const remove = (el: HTMLElement) => {
    const i = rows.findIndex((r) => r.el === el);
    if (i >= 0) rows.splice(i, 1);
    el.remove();
  };
  const addChannel = (ch: Channel) => {
    const r = channelRow(ch, app, id, remove);
    rows.push(r);
    channelBox.append(r.el);
  };
  (def.channels ?? []).forEach(addChannel);

  const read = (): AlertDef => {
    const cond: Condition = { op: op.value as Op };
    if (base.value === "week_ago") Object.assign(cond, { baseline: "week_ago", change_pct: numberOf(changePct) });
    else if (base.value === "rolling") Object.assign(cond, { baseline: "rolling", window_minutes: numberOf(windowMin), deviations: numberOf(deviations) });
    else cond.threshold = numberOf(threshold);
    const out: AlertDef = {
      name: name.value,
      metric: metric.value,
      condition: cond,
      warmup_minutes: numberOf(warmup) ?? 0,
      cooldown_minutes: numberOf(cooldown) ?? 0,
      reminder_minutes: numberOf(reminder) ?? 0,
      no_data: noData.value as AlertDef["no_data"],
      channels: rows.map((r) => r.read()),
      enabled: enabled.checked,
    };
    if (field.value) out.field = field.value;
    if (env.value) out.env = env.value;
    const t = parseTags(tags.value);
    if (Object.keys(t).length) out.tags = t;
    if (description.value.trim()) out.description = description.value;
    return out;
  };

  const el = h("form", { class: "card alert-form", onsubmit: (ev: Event) => { ev.preventDefault(); onSave(); }, oninput: onEdit, onchange: onEdit },
    h("div", { class: "form-grid" },
      ...labelled("name", name),
      ...labelled("metric", metric),
      ...labelled("field", field),
      ...labelled("env", env),
      ...labelled("tags", tags, "key:value pairs separated by spaces; * matches any characters"),
      h("label", {}, "condition"),
      h("div", { class: "list-item" }, base, op, threshold, changePct, windowMin, deviations),
      ...labelled("warm-up minutes", warmup, "the condition must hold this many minutes in a row before an incident opens"),
      ...labelled("cool-down minutes", cooldown, "it must not hold this many minutes in a row before the incident closes"),
      ...labelled("reminder minutes", reminder, "notify again while open every this many minutes; 0: never"),
      ...labelled("no data", noData, "a minute without data for a series"),
      ...labelled("description", description),
      ...labelled("enabled", enabled),
      h("label", {}, "channels"),
      h("div", {}, channelBox,
        h("button", { type: "button", id: "add-channel", onclick: () => addChannel({ type: "webhook", url: "" }) }, "Add channel")),
    ),
  );
  return { el, read };
}

export async function alertEditorView(ctx: Ctx, id?: string) {
  const [metrics, loaded] = await Promise.all([
    ctx.catalogue(),
    id ? api("GET", `/api/v1/alerts/${encodeURIComponent(id)}${qs({ app: ctx.app })}`) : Promise.resolve(null),
  ]);
  const def: AlertDef = loaded ?? { ...TEMPLATE, metric: metrics[0]?.name ?? "" };
  const kinds = new Map(metrics.map((m) => [m.name, m.kind]));

  // The form, and the same alert as text (JSON, or YAML pasted in).
  let mode: "form" | "text" = "form";
  let formTouched = false;
  let textTouched = false;
  const formEdited = () => {
    formTouched = true;
    later();
  };
  let form = alertForm(def, metrics, ctx.app, id, formEdited, () => void save());
  const formBox = h("div", {}, form.el);
  const area = h("textarea", { class: "code", spellcheck: "false", "aria-label": "alert definition", value: JSON.stringify(form.read(), null, 2),
    oninput: () => {
      textTouched = true;
      later();
    } });
  const textBox = h("div", { class: "card" },
    h("p", { class: "muted" }, "The alert as JSON, or paste YAML with the same keys. Saving sends the text as it is; the form and the chart read it when it is JSON."),
    area);
  const formTab = h("button", { id: "tab-form", role: "tab", onclick: () => toForm() }, "Form");
  const textTab = h("button", { id: "tab-text", role: "tab", onclick: () => toText() }, "YAML or JSON text");
  const show = (m: typeof mode) => {
    mode = m;
    formBox.hidden = m !== "form";
    textBox.hidden = m !== "text";
    formTab.classList.toggle("tab-active", m === "form");
    textTab.classList.toggle("tab-active", m === "text");
  };
  const toText = () => {
    if (formTouched) area.value = JSON.stringify(form.read(), null, 2);
    formTouched = textTouched = false;
    msg.replaceChildren();
    show("text");
  };
  const toForm = () => {
    if (textTouched) {
      const t = area.value.trim();
      try {
        if (!t.startsWith("{")) throw new Error("The form reads edited text only as JSON: save the YAML first (the form then shows it), or write JSON.");
        const parsed = JSON.parse(t);
        if (!parsed || typeof parsed !== "object" || !parsed.condition) throw new Error("The JSON needs at least a name, a metric and a condition.");
        form = alertForm(parsed, metrics, ctx.app, id, formEdited, () => void save());
        formBox.replaceChildren(form.el);
      } catch (e) {
        msg.replaceChildren(ctx.errorBox(e));
        return;
      }
    }
    formTouched = textTouched = false;
    msg.replaceChildren();
    show("form");
  };
  /** What to save or preview: the body to send, and the definition when it is readable here. */
  const source = (): { body: string; type: string; def: AlertDef | null } => {
    if (mode === "form") {
      const d = form.read();
      return { body: JSON.stringify(d), type: "application/json", def: d };
    }
    const t = area.value.trim();
    if (!t.startsWith("{")) return { body: t, type: "application/yaml", def: null };
    try {
      return { body: t, type: "application/json", def: JSON.parse(t) };
    } catch {
      // The server names the JSON error.
      return { body: t, type: "application/json", def: null };
    }
  };

  const msg = h("div");
  const save = async () => {
    try {
      const { body, type } = source();
      if (id) await api("PUT", `/api/v1/alerts/${encodeURIComponent(id)}${qs({ app: ctx.app })}`, body, type);
      else await api("POST", `/api/v1/alerts${qs({ app: ctx.app })}`, body, type);
      ctx.go("#/alerts");
    } catch (e) {
      msg.replaceChildren(ctx.errorBox(e));
      msg.scrollIntoView({ block: "nearest" });
    }
  };
  const del = async () => {
    if (!id || !confirm(`Delete alert "${def.name}"? Its incident history stays.`)) return;
    try {
      await api("DELETE", `/api/v1/alerts/${encodeURIComponent(id)}${qs({ app: ctx.app })}`);
      ctx.go("#/alerts");
    } catch (e) {
      msg.replaceChildren(ctx.errorBox(e));
    }
  };

  // ---- preview ----
  let previewSecs = 21600;
  const plotBox = h("div", { class: "plot", id: "preview-plot" });
  const previewMsg = h("div");
  const previewList = h("div", { id: "preview-incidents" });
  const rangeButtons = PREVIEW_RANGES.map(([label, secs]) =>
    h("button", { type: "button", "data-range": label, class: secs === previewSecs ? "primary" : undefined, onclick: () => {
      previewSecs = secs;
      rangeButtons.forEach((b) => b.classList.toggle("primary", b.dataset.range === label));
      void preview();
    } }, label));
  let plot: uPlot | null = null;
  let generation = 0;
  ctx.onLeave(() => plot?.destroy());
  const preview = async () => {
    const mine = ++generation;
    const src = source();
    const d: AlertDef = src.def && typeof src.def === "object" ? src.def : { name: "", metric: "", condition: { op: ">" } };
    d.condition ??= { op: ">" };
    d.metric ??= "";
    const to = Math.floor(Date.now() / 60000) * 60;
    // Minute buckets: the alert judges each minute, so the chart shows those values.
    const range: Range = { from: to - previewSecs, to, step: 60 };
    const groupBy = [...new Set(metrics.filter((m) => m.name === d.metric && (!d.env || m.env === d.env)).flatMap((m) => Object.keys(m.tags)))];
    const kind = kinds.get(d.metric);
    const fieldName = d.field ?? (kind ? FIELDS[kind][0] : "");
    // With `no_data: zero` a missing minute is judged as 0: draw it so.
    const graph: Graph = { title: d.metric, draw_null_as_zero: d.no_data !== "keep", metrics: [{ name: d.metric, fields: fieldName ? [fieldName] : [], tags: d.tags, group_by: groupBy }] };
    const dash: Dashboard = { title: "", env: d.env, graphs: [graph] };
    const planned = plan(dash, ctx.app, range, []);
    // A baseline's comparison needs more data: the same minutes a week
    // earlier, or the rolling window before the range.
    const cond = d.condition;
    const week = cond.baseline === "week_ago" && Number.isFinite(cond.change_pct);
    const windowMin = cond.window_minutes ?? NaN;
    const rolling = cond.baseline === "rolling" && Number.isInteger(windowMin) && windowMin >= 2 && windowMin <= 10080 && Number.isFinite(cond.deviations) && cond.deviations! >= 0;
    const baseRange: Range | null = !kind ? null
      : week ? { from: range.from - WEEK, to: range.to - WEEK, step: 60 }
      : rolling ? { from: range.from - windowMin * 60, to: range.to, step: 60 }
      : null;
    const basePlanned = baseRange ? plan(dash, ctx.app, baseRange, []) : [];
    const [q, p, b] = await Promise.allSettled([
      kind ? api("POST", "/api/v1/query", JSON.stringify({ queries: planned.map((x) => x.query) })) : Promise.resolve({ results: [{ series: [] }] }),
      api("POST", `/api/v1/alerts/preview${qs({ app: ctx.app, from: String(range.from), to: String(range.to) })}`, src.body, src.type),
      basePlanned.length ? api("POST", "/api/v1/query", JSON.stringify({ queries: basePlanned.map((x) => x.query) })) : Promise.resolve(null),
    ]);
    if (mine !== generation) return;
    const incidents: any[] = p.status === "fulfilled" ? p.value.incidents : [];
    previewMsg.replaceChildren(...(p.status === "rejected" ? [ctx.errorBox(p.reason)] : []), ...(b.status === "rejected" ? [ctx.errorBox(b.reason)] : []));
    const results = q.status === "fulfilled" ? q.value.results : planned.map(() => ({ error: String(q.reason?.message ?? q.reason) }));
    const data = collect(dash, planned, results, range);
    const markers: Marker[] = incidents.map((i) => ({ from: i.opened_at, to: i.closed_at, label: series(i.env, i.tags) }));
    const thr = cond.baseline ? null : cond.threshold ?? null;
    let guides: Guide[] = [];
    const base = b.status === "fulfilled" ? b.value?.results?.[0] : null;
    if (base && !base.error) {
      // Week-ago minutes are moved onto the current time axis.
      const raws: Raw[] = (base.series ?? []).map((s: any) => ({
        line: label(graph.label, d.metric, base.field || fieldName, s.tags ?? {}, false),
        byTs: byTime(s.points, week ? WEEK : 0),
      }));
      guides = week ? weekAgoGuides(raws, data[0].times, cond.change_pct!) : rollingGuides(raws, data[0].times, windowMin, cond.deviations!);
    }
    plotBox.dataset.baseline = guides.length ? cond.baseline ?? "" : "";
    plot?.destroy();
    plot = drawGraph(plotBox, { ...graph, label: "%name% " + groupBy.map((k) => `%${k}%`).join(" ") }, data[0], 60, { onZoom: () => {}, threshold: thr, markers, guides });
    plotBox.dataset.threshold = thr === null ? "" : String(thr);
    previewList.replaceChildren(
      p.status === "rejected"
        ? h("span")
        : incidents.length
          ? h("table", { class: "incidents" },
              h("thead", {}, h("tr", {}, h("th", {}, "series"), h("th", {}, "opened"), h("th", {}, "closed"), h("th", {}, "peak"), h("th", {}, "last"))),
              h("tbody", {},
                incidents.map((i) =>
                  h("tr", { "data-opened": String(i.opened_at), "data-closed": String(i.closed_at ?? "") },
                    h("td", {}, series(i.env, i.tags), i.no_data ? h("span", { class: "tags" }, " (no data)") : null),
                    h("td", {}, when(i.opened_at)),
                    h("td", {}, i.closed_at ? when(i.closed_at) : badge("open")),
                    h("td", {}, value(i.peak)),
                    h("td", {}, value(i.last)),
                  ),
                ),
              ),
            )
          : h("p", { class: "muted" }, "This alert would not have opened an incident in this range."),
    );
    plotBox.dataset.previewed = String(mine);
  };
  let timer = 0;
  const later = () => {
    clearTimeout(timer);
    timer = window.setTimeout(() => void preview(), 500);
  };
  ctx.onLeave(() => clearTimeout(timer));

  ctx.layout("alerts",
    h("div", { class: "toolbar" },
      h("h1", {}, id ? `Edit alert ${def.name}` : "New alert"),
      h("span", { class: "spacer" }),
      h("span", { class: "list-item", role: "tablist" }, formTab, textTab),
      h("button", { class: "primary", id: "save", onclick: save }, "Save"),
      id ? h("button", { class: "danger", id: "delete", onclick: del }, "Delete") : null,
      h("button", { onclick: () => ctx.go("#/alerts") }, "Cancel"),
    ),
    msg,
    h("div", { class: "alert-editor" },
      h("div", {}, formBox, textBox),
      h("div", { class: "card" },
        h("div", { class: "toolbar" }, h("h2", {}, "Preview"), h("span", { class: "spacer" }), ...rangeButtons,
          h("button", { type: "button", id: "preview", onclick: () => void preview() }, "Refresh")),
        h("p", { class: "muted" }, "The metric per minute and series, the threshold or what the baseline compares with (dashed: the week-ago level that triggers, or the rolling band), and the incidents this alert would have opened over stored data."),
        previewMsg,
        plotBox,
        previewList,
      ),
    ),
  );
  show("form");
  if (def.metric) void preview();
}

// ---- incident history ----

export async function incidentsView(ctx: Ctx, params: URLSearchParams) {
  const state = params.get("state") ?? "";
  const alert = params.get("alert") ?? "";
  const list: Incident[] = (await api("GET", `/api/v1/incidents${qs({ app: ctx.app, state, alert })}`)).incidents;
  const filter = h("select", { "aria-label": "state", onchange: () => {
    const p = new URLSearchParams(params);
    if (filter.value) p.set("state", filter.value);
    else p.delete("state");
    ctx.go(`#/incidents?${p}`);
  } }, h("option", { value: "" }, "open and closed"), h("option", { value: "open" }, "open"), h("option", { value: "closed" }, "closed"));
  filter.value = state;
  const graphLink = (i: Incident) => {
    const p = new URLSearchParams({ metric: i.metric, from: String(i.started_at - 3600), to: String((i.closed_at ?? Math.floor(Date.now() / 1000)) + 3600) });
    if (i.field) p.set("field", i.field);
    const t = Object.entries(i.tags).map(([k, v]) => `${k}:${v}`).join(" ");
    if (t) p.set("tags", t);
    return `#/explore?${p}`;
  };
  ctx.layout("incidents",
    h("div", { class: "toolbar" },
      h("h1", {}, "Incidents"),
      alert ? h("span", { class: "muted" }, `of alert ${alert}`) : null,
      h("span", { class: "spacer" }),
      filter,
    ),
    list.length
      ? h("div", { class: "table-wrap" },
          h("table", { class: "incidents" },
            h("thead", {}, h("tr", {},
              ["alert", "series", "state", "opened", "closed", "duration", "peak", "last", "mean", ""].map((t) => h("th", {}, t)))),
            h("tbody", {},
              list.map((i) =>
                h("tr", { "data-incident": i.id },
                  h("td", {}, h("a", { href: `#/alerts/edit/${encodeURIComponent(i.alert_id)}` }, i.alert),
                    h("div", { class: "tags" }, `${i.metric}${i.field ? " " + i.field : ""}`)),
                  h("td", { class: "series" }, series(i.env, i.tags)),
                  h("td", {}, badge(i.state), i.no_data ? h("div", { class: "tags" }, "no data") : null),
                  h("td", { class: "opened" }, when(i.opened_at)),
                  h("td", { class: "closed" }, when(i.closed_at)),
                  h("td", {}, duration(i.opened_at, i.closed_at)),
                  h("td", { class: "peak" }, value(i.peak)),
                  h("td", {}, value(i.last)),
                  h("td", {}, value(i.mean)),
                  h("td", {}, h("a", { href: graphLink(i) }, "graph")),
                ),
              ),
            ),
          ),
        )
      : h("div", { class: "card empty" }, state ? `No ${state} incidents.` : "No incidents yet."),
  );
}

/** The incidents shown on a dashboard graph: those of its metrics, env and tag filters. */
export function markersFor(incidents: Incident[], metrics: { metric: string; tags?: Record<string, string> }[], env?: string): Marker[] {
  return incidents
    .filter((i) => !env || i.env === env)
    .filter((i) => metrics.some((m) => m.metric === i.metric &&
      Object.entries(m.tags ?? {}).every(([k, pat]) => i.tags[k] !== undefined && globMatch(pat, i.tags[k]))))
    .map((i) => ({ from: i.opened_at, to: i.closed_at, label: `${i.alert} ${series(i.env, i.tags)}` }));
}
