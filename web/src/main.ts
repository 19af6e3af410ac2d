// The minutely web UI: sign-in, dashboards (view, create, edit, import,
// export, delete), the automatic dashboard and the metrics explorer. It uses
// only the public HTTP API. Routes live in the URL hash, so views are links.

import uPlot from "uplot";
import { collect, Dashboard, drawGraph, Graph, makeRange, plan, Range } from "./charts";
import { dashboardForm } from "./dashboard-form";
import { alertEditorView, alertsView, Ctx, Incident, incidentsView, markersFor } from "./alerts";
import { ago, api, ApiError, download, FIELDS, h, Metric, qs, session } from "./util";

const RANGES: [string, number][] = [["1h", 3600], ["4h", 14400], ["24h", 86400], ["7d", 604800], ["30d", 2592000]];
const AUTO_FIELDS: Record<string, string[]> = { counter: ["sum"], gauge: ["last"], distribution: ["mean", "p95"] };
const REFRESH_MS = 60_000;

const root = document.getElementById("app")!;
let app = sessionStorage.getItem("minutely.app") ?? "";
let apps: string[] = [];
let catalogue: Metric[] = [];
/** Stops the current view's timers and charts when the route changes. */
let teardown: (() => void)[] = [];

function route(): { path: string[]; params: URLSearchParams } {
  const [p, q] = location.hash.replace(/^#\/?/, "").split("?");
  return { path: p ? p.split("/").map(decodeURIComponent) : [], params: new URLSearchParams(q ?? "") };
}

function go(hash: string) {
  if (location.hash === hash) rerender();
  else location.hash = hash;
}

function errorBox(e: unknown): HTMLElement {
  return h("div", { class: "error", role: "alert" }, e instanceof Error ? e.message : String(e));
}

// ---- sign-in ----

async function signIn(key: string): Promise<void> {
  session.setKey(key.trim());
  // The catalogue without `app` tells the key's own app (or `default`).
  const own = await api("GET", "/api/v1/metrics");
  try {
    apps = (await api("GET", "/api/v1/apps")).apps.map((a: { name: string }) => a.name);
  } catch {
    apps = [own.app];
  }
  if (!app || !apps.includes(app)) {
    app = own.app;
    if (!own.metrics.length) {
      // An admin key of every app: start on the first app that has data.
      for (const a of apps) {
        if ((await api("GET", `/api/v1/metrics${qs({ app: a })}`)).metrics.length) {
          app = a;
          break;
        }
      }
    }
  }
  sessionStorage.setItem("minutely.app", app);
}

function signInView(message?: string) {
  const input = h("input", { type: "password", placeholder: "mk_read_… or mk_admin_…", autocomplete: "off", id: "key" });
  const err = h("div");
  if (message) err.append(errorBox(message));
  const submit = async (ev: Event) => {
    ev.preventDefault();
    try {
      await signIn(input.value);
      go("#/dashboards");
    } catch (e) {
      session.clear();
      err.replaceChildren(errorBox(e));
    }
  };
  root.replaceChildren(
    h("main", {},
      h("form", { class: "card signin", onsubmit: submit },
        h("h1", {}, "minutely"),
        h("p", { class: "muted" }, "Sign in with a read or admin key. It is kept in this browser tab only."),
        input,
        h("button", { class: "primary", type: "submit" }, "Sign in"),
        err,
      ),
    ),
  );
  input.focus();
}

function signOut() {
  session.clear();
  sessionStorage.removeItem("minutely.app");
  app = "";
  location.hash = "";
  signInView();
}

// ---- layout ----

function layout(active: string, ...content: (Node | string)[]) {
  const appSelect = h("select", { "aria-label": "app", onchange: (e: Event) => {
    app = (e.target as HTMLSelectElement).value;
    sessionStorage.setItem("minutely.app", app);
    go("#/dashboards");
  } }, apps.map((a) => h("option", { value: a }, a)));
  appSelect.value = app;
  const link = (hash: string, text: string, name: string) => h("a", { href: hash, class: active === name ? "active" : undefined }, text);
  root.replaceChildren(
    h("header", {},
      h("span", { class: "brand" }, "minutely"),
      h("nav", {}, link("#/dashboards", "Dashboards", "dashboards"), link("#/auto", "Automatic", "auto"), link("#/explore", "Explorer", "explore"),
        link("#/alerts", "Alerts", "alerts"), link("#/incidents", "Incidents", "incidents")),
      h("span", { class: "spacer" }),
      apps.length > 1 ? appSelect : h("span", { class: "muted" }, app),
      h("button", { onclick: signOut, id: "signout" }, "Sign out"),
    ),
    h("main", {}, ...content),
  );
}

async function loadCatalogue(): Promise<Metric[]> {
  catalogue = (await api("GET", `/api/v1/metrics${qs({ app })}`)).metrics;
  return catalogue;
}

// ---- time range ----

function rangeFrom(params: URLSearchParams): { range: Range; label: string; live: boolean } {
  const now = Date.now() / 1000;
  const from = Number(params.get("from"));
  const to = Number(params.get("to"));
  if (from && to && to > from) return { range: makeRange(from, to), label: "custom", live: false };
  const name = params.get("range") ?? "24h";
  const secs = RANGES.find(([n]) => n === name)?.[1] ?? 86400;
  return { range: makeRange(now - secs, now), label: name, live: true };
}

function rangePicker(params: URLSearchParams, onChange: (p: URLSearchParams) => void): HTMLElement {
  const current = rangeFrom(params).label;
  const wrap = h("span", { class: "list-item", role: "group", "aria-label": "time range" });
  for (const [name] of RANGES) {
    wrap.append(h("button", { class: current === name ? "primary" : undefined, "data-range": name, onclick: () => {
      const p = new URLSearchParams(params);
      p.delete("from");
      p.delete("to");
      p.set("range", name);
      onChange(p);
    } }, name));
  }
  const toLocal = (ts: number) => new Date(ts * 1000 - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const r = rangeFrom(params).range;
  const fromIn = h("input", { type: "datetime-local", value: toLocal(r.from), "aria-label": "from" });
  const toIn = h("input", { type: "datetime-local", value: toLocal(r.to), "aria-label": "to" });
  wrap.append(
    h("details", {},
      h("summary", { class: current === "custom" ? "active" : undefined }, "custom"),
      h("span", { class: "list-item" }, fromIn, toIn, h("button", { onclick: () => {
        const p = new URLSearchParams(params);
        p.set("from", String(new Date(fromIn.value).getTime() / 1000));
        p.set("to", String(new Date(toIn.value).getTime() / 1000));
        p.delete("range");
        onChange(p);
      } }, "Apply")),
    ),
  );
  return wrap;
}

// ---- a dashboard on screen ----

/** Draws a dashboard and refreshes it every minute with one POST /api/v1/query. */
function showDashboard(into: HTMLElement, d: Dashboard, params: URLSearchParams, base: string, extra: Node[] = []) {
  const setParams = (p: URLSearchParams) => go(`${base}?${p}`);
  const status = h("span", { class: "muted", id: "refreshed" });
  const boxes = d.graphs.map(() => h("div", { class: "plot" }));
  into.replaceChildren(
    h("div", { class: "toolbar" },
      h("div", {}, h("h1", {}, d.title), d.description ? h("div", { class: "muted" }, d.description) : null),
      h("span", { class: "spacer" }),
      ...extra,
    ),
    h("div", { class: "toolbar" }, rangePicker(params, setParams), h("span", { class: "spacer" }), status),
    d.graphs.length
      ? h("div", { class: "grid" },
          d.graphs.map((g, i) =>
            h("section", { class: "card graph", "data-title": g.title },
              h("h2", {}, g.title),
              g.description ? h("div", { class: "desc muted" }, g.description) : null,
              boxes[i],
            ),
          ),
        )
      : h("div", { class: "empty" }, "This dashboard has no graphs yet."),
  );
  let plots: (uPlot | null)[] = [];
  const live = rangeFrom(params).live;
  const refresh = async () => {
    const { range } = rangeFrom(params);
    const names = catalogue.map((m) => m.name);
    const planned = plan(d, app, range, names);
    let results: any[] = [];
    // Incidents of alerts on the graphs' metrics are shaded on them; a key
    // that may not read them (or an error) just shows no markers.
    const incidents: Promise<Incident[]> = planned.length
      ? api("GET", `/api/v1/incidents${qs({ app, from: String(range.from), to: String(range.to) })}`).then((r) => r.incidents, () => [])
      : Promise.resolve([]);
    try {
      if (planned.length) {
        results = (await api("POST", "/api/v1/query", JSON.stringify({ queries: planned.map((p) => p.query) }))).results;
      }
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return signOut();
      results = planned.map(() => ({ error: e instanceof Error ? e.message : String(e) }));
    }
    const data = collect(d, planned, results, range);
    const known = await incidents;
    plots.forEach((p) => p?.destroy());
    plots = d.graphs.map((g: Graph, i) =>
      drawGraph(boxes[i], g, data[i], range.step, {
        markers: markersFor(known, planned.filter((p) => p.graph === i), d.env),
        onZoom: (from, to) => {
          const p = new URLSearchParams(params);
          p.set("from", String(from));
          p.set("to", String(to));
          p.delete("range");
          setParams(p);
        },
      }),
    );
    status.textContent = live
      ? `updated ${new Date().toLocaleTimeString()}`
      : `fixed range: automatic refresh paused (updated ${new Date().toLocaleTimeString()})`;
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes ?? 0) + 1);
  };
  const onResize = () => plots.forEach((p, i) => p?.setSize({ width: Math.max(200, boxes[i].clientWidth), height: 200 }));
  window.addEventListener("resize", onResize);
  // A fixed range (typed, or zoomed into by dragging) is not refreshed;
  // `refresh=SECONDS` in the address changes the interval.
  const every = Math.max(1, Number(params.get("refresh")) || REFRESH_MS / 1000) * 1000;
  const timer = live ? window.setInterval(refresh, every) : 0;
  teardown.push(() => {
    clearInterval(timer);
    window.removeEventListener("resize", onResize);
    plots.forEach((p) => p?.destroy());
  });
  requestAnimationFrame(() => void refresh());
}

// ---- views ----

async function dashboardsView() {
  const list: any[] = (await api("GET", `/api/v1/dashboards${qs({ app })}`)).dashboards;
  const fileIn = h("input", { type: "file", accept: ".yaml,.yml,.json", "aria-label": "import file", onchange: async () => {
    const f = fileIn.files?.[0];
    if (!f) return;
    const text = await f.text();
    await importText(text, f.name.endsWith(".json") || text.trim().startsWith("{"), msg);
  } });
  const msg = h("div");
  layout("dashboards",
    h("div", { class: "toolbar" },
      h("h1", {}, "Dashboards"),
      h("span", { class: "spacer" }),
      h("button", { class: "primary", onclick: () => go("#/new") }, "New dashboard"),
      h("button", { onclick: () => go("#/import") }, "Import YAML or JSON"),
      h("label", { class: "muted" }, "or a file: ", fileIn),
    ),
    msg,
    list.length
      ? h("div", { class: "card" },
          list.map((d) =>
            h("div", { class: "list-item", style: "padding:8px 0;border-bottom:1px solid var(--border)", "data-id": d.id },
              h("div", { class: "title" },
                h("a", { href: `#/d/${encodeURIComponent(d.id)}` }, d.title),
                h("div", { class: "muted" }, `${d.graphs.length} graphs`, d.description ? ` · ${d.description}` : ""),
              ),
              h("button", { onclick: () => go(`#/edit/${encodeURIComponent(d.id)}`) }, "Edit"),
              h("button", { onclick: () => exportYaml(d.id) }, "Export YAML"),
              h("button", { class: "danger", onclick: async () => {
                if (!confirm(`Delete dashboard "${d.title}"?`)) return;
                try {
                  await api("DELETE", `/api/v1/dashboards/${encodeURIComponent(d.id)}${qs({ app })}`);
                  rerender();
                } catch (e) {
                  msg.replaceChildren(errorBox(e));
                }
              } }, "Delete"),
            ),
          ),
        )
      : h("div", { class: "empty" }, "No dashboards yet. Every metric still shows on the ", h("a", { href: "#/auto" }, "automatic dashboard"), "."),
  );
}

async function exportYaml(id: string) {
  const text = await api("GET", `/api/v1/dashboards/${encodeURIComponent(id)}${qs({ app, format: "yaml" })}`);
  download(`${id}.yaml`, text, "application/yaml");
}

async function importText(text: string, json: boolean, msg: HTMLElement) {
  try {
    const d = await api("POST", `/api/v1/dashboards${qs({ app })}`, text, json ? "application/json" : "application/yaml");
    go(`#/d/${encodeURIComponent(d.id)}`);
  } catch (e) {
    msg.replaceChildren(errorBox(e));
  }
}

const TEMPLATE = `title: My dashboard
description: What this dashboard is for
graphs:
- title: Orders per minute
  label: '%name% %region%'
  metrics:
  - name: order_count
    fields:
    - sum
    group_by:
    - region
`;

const TEMPLATE_DASHBOARD: Dashboard = {
  title: "My dashboard",
  description: "What this dashboard is for",
  graphs: [{ title: "Orders per minute", label: "%name% %region%", metrics: [{ name: "order_count", fields: ["sum"], group_by: ["region"] }] }],
};

/**
 * The dashboard editor: new (POST), edit (PUT) or import (POST, any
 * format). New and edited dashboards have a form and the YAML or JSON text;
 * the form shows text edits made as JSON and the text shows form edits as
 * JSON (the browser has no YAML reader).
 */
async function editorView(id?: string, importing = false) {
  let text = importing ? "" : TEMPLATE;
  let def: Dashboard = TEMPLATE_DASHBOARD;
  if (id) {
    [text, def] = await Promise.all([
      api("GET", `/api/v1/dashboards/${encodeURIComponent(id)}${qs({ app, format: "yaml" })}`),
      api("GET", `/api/v1/dashboards/${encodeURIComponent(id)}${qs({ app })}`),
    ]);
  }
  const names = catalogue.length ? catalogue : await loadCatalogue();
  const area = h("textarea", { class: "code", spellcheck: "false", "aria-label": "dashboard definition", value: text });
  const msg = h("div");
  let form = dashboardForm(def, names);
  const formBox = h("div", { id: "dashboard-form" }, form.el);
  const textBox = h("div", {},
    h("p", { class: "muted" },
      importing
        ? "Paste a dashboard exported from minutely (YAML or JSON) or from AppSignal (dashboard JSON or the older YAML)."
        : "A dashboard is YAML (or JSON): a title, an optional description and env, and graphs with chart (line, area, relative_area, number), format (number, percent, throughput, duration, size with format_input), label, draw_null_as_zero and metrics (name or pattern with *, fields, tags, group_by).",
    ),
    area,
    h("p", { class: "muted" }, "Metrics of this app: ", names.map((m) => `${m.name} (${m.kind})`).join(", ") || "none yet"),
  );
  let mode: "form" | "text" = importing ? "text" : "form";
  let formTouched = false;
  let textTouched = false;
  formBox.addEventListener("input", () => (formTouched = true));
  formBox.addEventListener("change", () => (formTouched = true));
  formBox.addEventListener("click", (e) => {
    if ((e.target as HTMLElement).closest("button")) formTouched = true;
  });
  area.addEventListener("input", () => (textTouched = true));
  const formTab = h("button", { id: "tab-form", role: "tab", onclick: () => toForm() }, "Form");
  const textTab = h("button", { id: "tab-text", role: "tab", onclick: () => toText() }, "YAML or JSON text");
  const show = (m: typeof mode) => {
    mode = m;
    formBox.hidden = m !== "form";
    textBox.hidden = m !== "text";
    formTab.classList.toggle("tab-active", m === "form");
    textTab.classList.toggle("tab-active", m === "text");
    formTab.setAttribute("aria-selected", String(m === "form"));
    textTab.setAttribute("aria-selected", String(m === "text"));
  };
  const toText = () => {
    if (formTouched) {
      area.value = JSON.stringify(form.read(), null, 2);
      formTouched = textTouched = false;
    }
    msg.replaceChildren();
    show("text");
  };
  const toForm = () => {
    if (textTouched) {
      const t = area.value.trim();
      let parsed: Dashboard;
      try {
        if (!t.startsWith("{")) throw new Error("The form reads edited text only as JSON: save the YAML first (the form then shows it), or write JSON.");
        parsed = JSON.parse(t);
        if (!parsed || !Array.isArray(parsed.graphs)) throw new Error("The JSON needs a title and a list of graphs.");
      } catch (e) {
        msg.replaceChildren(errorBox(e));
        return;
      }
      form = dashboardForm(parsed, names);
      formBox.replaceChildren(form.el);
      formTouched = textTouched = false;
    }
    msg.replaceChildren();
    show("form");
  };
  const save = async () => {
    const body = mode === "form" ? JSON.stringify(form.read()) : area.value;
    const json = body.trim().startsWith("{");
    try {
      const d = id
        ? await api("PUT", `/api/v1/dashboards/${encodeURIComponent(id)}${qs({ app })}`, body, json ? "application/json" : "application/yaml")
        : await api("POST", `/api/v1/dashboards${qs({ app })}`, body, json ? "application/json" : "application/yaml");
      go(`#/d/${encodeURIComponent(d.id)}`);
    } catch (e) {
      msg.replaceChildren(errorBox(e));
    }
  };
  layout("dashboards",
    h("div", { class: "toolbar" },
      h("h1", {}, id ? `Edit ${id}` : importing ? "Import a dashboard" : "New dashboard"),
      h("span", { class: "spacer" }),
      importing ? null : h("span", { class: "list-item", role: "tablist" }, formTab, textTab),
      h("button", { class: "primary", onclick: save, id: "save" }, "Save"),
      h("button", { onclick: () => history.back() }, "Cancel"),
    ),
    msg,
    formBox,
    textBox,
  );
  show(mode);
}

async function dashboardView(id: string, params: URLSearchParams) {
  const [d] = await Promise.all([
    api("GET", `/api/v1/dashboards/${encodeURIComponent(id)}${qs({ app })}`),
    loadCatalogue(),
  ]);
  const into = h("div");
  layout("dashboards", into);
  showDashboard(into, d, params, `#/d/${encodeURIComponent(id)}`, [
    h("button", { onclick: () => go(`#/edit/${encodeURIComponent(id)}`) }, "Edit"),
    h("button", { onclick: () => exportYaml(id) }, "Export YAML"),
  ]);
}

/** One graph per metric that no dashboard shows, with the fields its kind suits. */
async function autoView(params: URLSearchParams) {
  const [list, metrics] = await Promise.all([api("GET", `/api/v1/dashboards${qs({ app })}`), loadCatalogue()]);
  const patterns: string[] = list.dashboards.flatMap((d: Dashboard) => d.graphs.flatMap((g) => g.metrics.map((m) => m.name)));
  const shown = (name: string) =>
    patterns.some((p) => (p.includes("*") ? new RegExp("^" + p.split("*").map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*") + "$").test(name) : p === name));
  const seen = new Set<string>();
  const graphs: Graph[] = [];
  for (const m of metrics) {
    if (shown(m.name) || seen.has(m.name)) continue;
    seen.add(m.name);
    graphs.push({ title: m.name, description: m.kind, metrics: [{ name: m.name, fields: AUTO_FIELDS[m.kind] }] });
  }
  const into = h("div");
  layout("auto", into);
  showDashboard(into, { title: "Automatic dashboard", description: "Every metric of this app that no dashboard shows.", graphs }, params, "#/auto");
}

async function explorerView(params: URLSearchParams) {
  const metrics = await loadCatalogue();
  const search = h("input", { type: "search", placeholder: "Search name, kind or tag", "aria-label": "search metrics", value: params.get("q") ?? "" });
  const tbody = h("tbody");
  const selected = params.get("metric") ?? "";
  const fill = () => {
    const q = search.value.toLowerCase();
    const rows = metrics.filter((m) =>
      !q || m.name.toLowerCase().includes(q) || m.kind.includes(q) ||
      Object.entries(m.tags).some(([k, vs]) => k.toLowerCase().includes(q) || vs.some((v) => v.toLowerCase().includes(q))));
    tbody.replaceChildren(
      ...rows.map((m) =>
        h("tr", { class: `clickable${m.name === selected ? " selected" : ""}`, "data-metric": m.name, onclick: () => {
          const p = new URLSearchParams({ metric: m.name, q: search.value });
          go(`#/explore?${p}`);
        } },
          h("td", {}, h("div", {}, m.name), h("div", { class: "tags" }, Object.entries(m.tag_value_counts).map(([k, n]) => `${k} (${n})`).join(", "))),
          h("td", {}, m.kind, m.env !== "default" ? h("div", { class: "tags" }, m.env) : null),
          h("td", {}, String(m.series)),
          h("td", { class: "muted" }, ago(m.last_seen)),
        ),
      ),
    );
  };
  search.addEventListener("input", fill);
  fill();
  const panel = h("div");
  layout("explore",
    h("div", { class: "explorer" },
      h("div", {},
        h("div", { class: "toolbar" }, search),
        h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "metric"), h("th", {}, "kind"), h("th", {}, "series"), h("th", {}, "last seen"))), tbody),
      ),
      panel,
    ),
  );
  const m = metrics.find((x) => x.name === selected);
  if (!m) {
    panel.append(h("div", { class: "card empty" }, metrics.length ? "Pick a metric to chart it." : "No metrics in this app yet."));
    return;
  }
  const field = params.get("field") || FIELDS[m.kind][0];
  const update = (k: string, v: string) => {
    const p = new URLSearchParams(params);
    if (v) p.set(k, v);
    else p.delete(k);
    go(`#/explore?${p}`);
  };
  const fieldSel = h("select", { "aria-label": "field", onchange: () => update("field", fieldSel.value) },
    FIELDS[m.kind].map((f) => h("option", { value: f }, f)));
  fieldSel.value = field;
  const groupSel = h("select", { "aria-label": "group by", onchange: () => update("group_by", groupSel.value) },
    h("option", { value: "" }, "(no grouping)"), Object.keys(m.tags).map((k) => h("option", { value: k }, k)));
  groupSel.value = params.get("group_by") ?? "";
  const tagsIn = h("input", { placeholder: "region:eu-* payment:card", "aria-label": "tag filters", value: params.get("tags") ?? "",
    onchange: () => update("tags", tagsIn.value.trim()) });
  const tags: Record<string, string> = {};
  for (const t of (params.get("tags") ?? "").split(/\s+/).filter(Boolean)) {
    const i = t.indexOf(":");
    if (i > 0) tags[t.slice(0, i)] = t.slice(i + 1);
  }
  const group = params.get("group_by");
  const d: Dashboard = {
    title: m.name,
    graphs: [{ title: `${m.name} ${field}${group ? ` by ${group}` : ""}`, metrics: [{ name: m.name, fields: [field], tags, group_by: group ? [group] : [] }] }],
  };
  panel.append(
    h("div", { class: "card" },
      h("div", { class: "form-row" }, h("label", {}, "field"), fieldSel, h("label", {}, "group by"), groupSel),
      h("div", { class: "form-row" }, h("label", {}, "tags"), tagsIn),
      h("div", { class: "form-row muted" }, "Shareable: this page's address holds the query."),
    ),
  );
  // The chart reuses the dashboard renderer inside the panel.
  const holder = h("div");
  panel.append(holder);
  showDashboard(holder, d, params, "#/explore");
}

// ---- router ----

/** What the alert pages use of this shell. */
function ctx(): Ctx {
  return {
    app,
    layout,
    go,
    rerender,
    catalogue: loadCatalogue,
    errorBox,
    onLeave: (f) => teardown.push(f),
  };
}

async function render() {
  teardown.forEach((f) => f());
  teardown = [];
  const { path, params } = route();
  if (!session.key()) return signInView();
  try {
    if (!apps.length) await signIn(session.key()!);
    switch (path[0] ?? "dashboards") {
      case "d":
        return await dashboardView(path[1], params);
      case "edit":
        return await editorView(path[1]);
      case "new":
        return await editorView();
      case "import":
        return await editorView(undefined, true);
      case "auto":
        return await autoView(params);
      case "explore":
        return await explorerView(params);
      case "alerts":
        if (path[1] === "new") return await alertEditorView(ctx());
        if (path[1] === "edit") return await alertEditorView(ctx(), path[2]);
        return await alertsView(ctx());
      case "incidents":
        return await incidentsView(ctx(), params);
      default:
        return await dashboardsView();
    }
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      session.clear();
      return signInView(e.message);
    }
    layout("", errorBox(e));
  }
}

// `/?key=KEY` signs in once and leaves the key out of the address bar.
const fromUrl = new URLSearchParams(location.search).get("key");
if (fromUrl) {
  session.setKey(fromUrl);
  history.replaceState(null, "", location.pathname + location.hash);
}
// Renders run one after another: a slow view that finishes after a newer
// navigation must not draw over it.
let rendering: Promise<void> = Promise.resolve();
function rerender() {
  rendering = rendering.then(render, render);
}
window.addEventListener("hashchange", rerender);
rerender();
