// Browser tests of the web UI against the real binary with demo data, in
// headless Chromium (Debian's package) driven by playwright-core.
//
//   MINUTELY_BIN=target/debug/minutely node --test web/test/
//
// Screenshots of the main pages: see MINUTELY_SCREENSHOTS below.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, mkdirSync, rmSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const repo = join(dirname(fileURLToPath(import.meta.url)), "../..");
const bin = process.env.MINUTELY_BIN ?? join(repo, "target/debug/minutely");
// Screenshots go to a temporary directory unless MINUTELY_SCREENSHOTS names
// one (`MINUTELY_SCREENSHOTS=docs/screenshots scripts/test-web` refreshes
// the README's).
let shots;
const ADMIN = "ui-test-admin-key-0123456789";
const PUSH = "ui-test-push-key-0123456789";

let server, url, browser, tmp;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "minutely-ui-"));
  // A late window over a week: the baseline test pushes minutes of a week ago.
  server = spawn(bin, ["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir", join(tmp, "data"), "--statsd", "off", "--alerts-clock", "manual", "--late-window-secs", String(9 * 86400)], {
    env: {
      ...process.env,
      MINUTELY_ADMIN_KEY: ADMIN,
      MINUTELY_PUSH_KEY: PUSH,
      // Failed deliveries to the unreachable test hook are expected: not logged.
      MINUTELY_LOG: "warn,minutely_server::alerts::notify=error",
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 120_000);
    server.stdout.on("data", (b) => {
      out += b;
      const m = out.match(/minutely listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    server.on("exit", (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
  assert.match(out, new RegExp(`web UI: +${url.replace(/[.]/g, "\\.")}/\\?key=${ADMIN}`), "the first start prints the UI link");
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    // launch() gives the browser a fresh temporary profile (user data dir).
  });
  shots = process.env.MINUTELY_SCREENSHOTS ? join(process.cwd(), process.env.MINUTELY_SCREENSHOTS) : join(tmp, "screenshots");
  mkdirSync(shots, { recursive: true });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.on("exit", r));
    server.kill("SIGTERM");
    await exited;
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function page(width = 1400, options = {}) {
  const ctx = await browser.newContext({ viewport: { width, height: 1000 }, acceptDownloads: true, ...options });
  const p = await ctx.newPage();
  const errors = [];
  p.on("pageerror", (e) => errors.push(e.message));
  p.errors = errors;
  return p;
}

/** Signs in with the link the server prints. */
async function signedIn(width, options) {
  const p = await page(width, options);
  await p.goto(`${url}/?key=${ADMIN}`);
  await p.waitForSelector("text=Webshop overview");
  assert.equal(new URL(p.url()).search, "", "the key leaves the address bar");
  return p;
}

/** Waits until every graph of the page has drawn (or shown an error). */
async function drawn(p, graphs) {
  await p.waitForFunction((n) => document.querySelectorAll(".graph .plot[data-series]").length === n, graphs);
}

test("sign in with a typed key, a wrong key, and sign out", async () => {
  const p = await page();
  await p.goto(url);
  await p.fill("#key", "wrong");
  await p.click("button[type=submit]");
  await p.waitForSelector("text=unknown or revoked key");
  await p.fill("#key", ADMIN);
  await p.click("button[type=submit]");
  await p.waitForSelector("text=Webshop overview");
  await p.screenshot({ path: join(shots, "dashboards.png") });
  await p.click("#signout");
  await p.waitForSelector("#key");
  await p.reload();
  await p.waitForSelector("#key");
  assert.deepEqual(p.errors, []);
});

test("the demo dashboard draws every graph with data, hover shows values, ranges change", async () => {
  const p = await signedIn();
  const queries = [];
  p.on("request", (r) => r.url().endsWith("/api/v1/query") && queries.push(r.method()));
  await p.click("text=Webshop overview");
  await drawn(p, 4);
  assert.deepEqual(queries, ["POST"], "one POST /api/v1/query per refresh");
  const graphs = await p.$$eval(".graph", (gs) =>
    gs.map((g) => ({
      title: g.dataset.title,
      series: Number(g.querySelector(".plot").dataset.series),
      points: Number(g.querySelector(".plot").dataset.points),
      errors: g.querySelectorAll(".graph-error").length,
      canvas: !!g.querySelector("canvas"),
    })),
  );
  for (const g of graphs) {
    assert.equal(g.errors, 0, g.title);
    assert.ok(g.series >= 1 && g.points > 10, `${g.title} has data: ${JSON.stringify(g)}`);
  }
  assert.equal(graphs.find((g) => g.title === "Active shoppers").series, 2, "one line per region");
  assert.equal(graphs.find((g) => g.title === "Payment mix").series, 2, "one area per payment");
  assert.ok(graphs.filter((g) => g.canvas).length >= 3);
  const big = await p.textContent(".graph[data-title='Orders in range'] .big");
  assert.match(big, /^\d/, "the number graph shows a number");
  await p.screenshot({ path: join(shots, "dashboard.png") });

  // Hover: the tooltip lists every series' value at that minute, and the
  // crosshair moves on the other graphs too.
  const over = await p.$(".graph[data-title='Active shoppers'] .u-over");
  const box = await over.boundingBox();
  await p.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
  const tip = await p.waitForSelector(".graph[data-title='Active shoppers'] .tooltip:not([hidden])");
  const rows = await tip.$$eval(".tip-row", (rs) => rs.map((r) => r.textContent));
  assert.equal(rows.length, 2);
  for (const r of rows) assert.match(r, /^(eu|us)\d/);
  const cursors = await p.$$eval(".u-cursor-x", (cs) => cs.filter((c) => c.style.transform && !c.style.transform.includes("-10px")).length);
  assert.ok(cursors >= 3, `crosshair synced across graphs (${cursors})`);
  await p.screenshot({ path: join(shots, "hover.png") });

  // Time range: 1 h has minute buckets.
  await p.click("button[data-range='1h']");
  await p.waitForFunction(() => location.hash.includes("range=1h"));
  await drawn(p, 4);
  await p.waitForFunction(() => Number(document.querySelector(".graph[data-title='Active shoppers'] .plot").dataset.points) <= 2 * 61);
  assert.ok(queries.length >= 2);
  assert.deepEqual(p.errors, []);
});

test("create a dashboard with two metrics, reload, export and import it", async () => {
  const p = await signedIn();
  await p.click("text=New dashboard");
  await p.click("#tab-text");
  const yaml = `title: Two metrics <b>escaped</b>
graphs:
- title: Shoppers and orders
  metrics:
  - name: active_shoppers
  - name: order_count
    fields: [sum]
`;
  await p.fill("textarea", yaml);
  await p.click("#save");
  await p.waitForSelector("h1:text('Two metrics <b>escaped</b>')");
  await drawn(p, 1);
  assert.equal(await p.$eval(".graph .plot", (e) => e.dataset.series), "2");
  assert.equal(await p.$("h1 b"), null, "user text is escaped");
  await p.reload();
  await drawn(p, 1);
  const id = decodeURIComponent(new URL(p.url()).hash.split("/")[2].split("?")[0]);
  assert.equal(id, "two-metrics-b-escaped-b");

  // Export downloads our YAML; importing it makes an identical dashboard.
  const [download] = await Promise.all([p.waitForEvent("download"), p.click("text=Export YAML")]);
  const file = join(tmp, "export.yaml");
  await download.saveAs(file);
  const exported = readFileSync(file, "utf8");
  assert.match(exported, /^title: Two metrics <b>escaped<\/b>\n/);
  await p.goto(`${url}/#/dashboards`);
  await p.setInputFiles("input[type=file]", file);
  await p.waitForFunction(() => location.hash.startsWith("#/d/two-metrics-b-escaped-b-2"));
  const again = await p.evaluate(async (key) => {
    const r = await fetch("/api/v1/dashboards/two-metrics-b-escaped-b-2?app=webshop&format=yaml", { headers: { Authorization: `Bearer ${key}` } });
    return r.text();
  }, ADMIN);
  assert.equal(again, exported);
  // And by pasting into the import page.
  await p.goto(`${url}/#/import`);
  await p.fill("textarea", exported);
  await p.click("#save");
  await p.waitForFunction(() => location.hash.startsWith("#/d/two-metrics-b-escaped-b-3"));
  await p.goto(`${url}/#/dashboards`);
  await p.waitForSelector("[data-id='two-metrics-b-escaped-b-3']");
  await p.screenshot({ path: join(shots, "dashboard-list.png") });
  assert.deepEqual(p.errors, []);
});

test("the explorer charts a distribution's p95 grouped by a tag", async () => {
  const p = await signedIn();
  await p.goto(`${url}/#/explore`);
  await p.fill("input[type=search]", "order_item");
  await p.click("tr[data-metric='order_item_count']");
  await p.selectOption("select[aria-label=field]", "p95");
  await p.waitForFunction(() => location.hash.includes("field=p95"));
  await p.selectOption("select[aria-label='group by']", "region");
  await p.waitForFunction(() => location.hash.includes("group_by=region"));
  await drawn(p, 1);
  // The chart is redrawn after each choice: wait for the grouped one.
  await p.waitForFunction(() => document.querySelector(".graph .plot")?.dataset.series === "2");
  const plot = await p.$eval(".graph .plot", (e) => ({ series: Number(e.dataset.series), points: Number(e.dataset.points) }));
  assert.equal(plot.series, 2);
  assert.ok(plot.points > 10);
  const legend = await p.$$eval(".legend-item", (ls) => ls.map((l) => l.textContent));
  assert.deepEqual(legend, ["order_item_count eu", "order_item_count us"]);
  // The address is shareable: a fresh tab opens the same chart.
  const shared = p.url();
  const q = await signedIn();
  await q.goto(shared);
  await drawn(q, 1);
  assert.equal(await q.$eval(".graph .plot", (e) => e.dataset.series), "2");
  await p.screenshot({ path: join(shots, "explorer.png") });
  assert.deepEqual(p.errors, []);
});

test("the automatic dashboard shows what no dashboard does; a failing graph shows its error", async () => {
  const p = await signedIn();
  await p.goto(`${url}/#/auto`);
  await drawn(p, 1);
  assert.deepEqual(await p.$$eval(".graph", (gs) => gs.map((g) => g.dataset.title)), ["invoice_count"]);
  // A graph with a field that does not fit its metric errors; the other draws.
  const r = await p.evaluate(async (key) => {
    const body = "title: Broken\ngraphs:\n- title: Bad\n  metrics:\n  - name: active_shoppers\n    fields: [p95]\n- title: Good\n  metrics:\n  - name: order_count\n";
    const res = await fetch("/api/v1/dashboards?app=webshop", { method: "POST", headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/yaml" }, body });
    return res.json();
  }, ADMIN);
  await p.goto(`${url}/#/d/${r.id}`);
  await drawn(p, 2);
  assert.match(await p.textContent(".graph[data-title='Bad'] .graph-error"), /does not apply to "active_shoppers"/);
  assert.ok(Number(await p.$eval(".graph[data-title='Good'] .plot", (e) => e.dataset.points)) > 10);
  // Phone width: graphs stack in one column.
  await p.setViewportSize({ width: 390, height: 900 });
  await p.goto(`${url}/#/d/webshop-overview`);
  await drawn(p, 4);
  await p.screenshot({ path: join(shots, "phone.png"), fullPage: false });
  assert.deepEqual(p.errors, []);
});

test("a 10-graph dashboard over 24 h draws every graph", async () => {
  const p = await signedIn();
  const graphs = Array.from({ length: 10 }, (_, i) => `- title: G${i}\n  metrics:\n  - name: order_item_count\n    fields: [mean, p95]\n    group_by: [region]\n`).join("");
  const r = await p.evaluate(async ([key, body]) => {
    const res = await fetch("/api/v1/dashboards?app=webshop", { method: "POST", headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/yaml" }, body });
    return res.json();
  }, [ADMIN, `title: Ten\ngraphs:\n${graphs}`]);
  await p.goto(`${url}/#/dashboards`);
  await p.waitForSelector(`[data-id='${r.id}']`);
  const t0 = Date.now();
  await p.goto(`${url}/#/d/${r.id}?range=24h`);
  await drawn(p, 10);
  // A figure, not an assertion: timings belong in docs/BENCHMARKS.md.
  console.log(`# 10-graph dashboard over 24 h drawn in ${Date.now() - t0} ms`);
  assert.deepEqual(p.errors, []);
});

// ---- alerts ----

/** The start of a whole hour at least two hours ago (inside the late window). */
const T0 = Math.floor((Date.now() / 1000 - 3 * 3600) / 3600) * 3600;
/** A port that was just free: deliveries there fail with "connection refused". */
async function deadHook() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const hook = `http://127.0.0.1:${srv.address().port}/hook`;
  await new Promise((r) => srv.close(r));
  return hook;
}

async function call(method, path, body, key = ADMIN) {
  const r = await fetch(`${url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  assert.ok(r.ok, `${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** ui_orders in region eu: 5 per minute in minutes 0-4 of T0, none in 5-7, 3 in 8-9. */
async function pushOrders() {
  const points = [0, 1, 2, 3, 4, 8, 9].map((m) => ({ kind: "counter", name: "ui_orders", value: m < 5 ? 5 : 3, tags: { region: "eu" }, ts: T0 + m * 60 + 10 }));
  // The push key is the default app's; the admin key of every app pushes into webshop.
  const r = await call("POST", "/api/v1/push", { app: "webshop", env: "production", points });
  assert.equal(r.accepted, 7);
}

test("an alert made with the form: preview, test notification, state, delivery failure, incident history, dashboard marker", async () => {
  await pushOrders();
  const dead = await deadHook();
  const p = await signedIn();
  await p.goto(`${url}/#/alerts`);
  await p.waitForSelector("text=No alerts yet.");
  await p.click("text=New alert");
  await p.fill("#f-name", "UI orders stopped");
  await p.selectOption("#f-metric", "ui_orders");
  await p.selectOption("#f-field", "sum");
  await p.selectOption("#f-env", "production");
  await p.fill("#f-tags", "region:*");
  await p.selectOption("select[aria-label=operator]", "<");
  await p.fill("input[aria-label=threshold]", "1");
  await p.fill("#f-warm-up-minutes", "2");
  await p.fill("#f-cool-down-minutes", "1");
  await p.fill("#f-description", "Orders stopped in a region");
  await p.click("#add-channel");
  await p.fill("input[aria-label='channel target']", dead);

  // The preview: minute values of the series, the threshold line inside
  // the plot, and the incident the alert would have opened at minute 6
  // and closed at minute 8, listed and shaded.
  const row = `#preview-incidents tr[data-opened='${T0 + 360}'][data-closed='${T0 + 480}']`;
  await p.waitForSelector(row);
  const plot = await p.$eval("#preview-plot", (e) => ({ ...e.dataset, height: e.querySelector("canvas")?.clientHeight }));
  assert.equal(plot.threshold, "1");
  assert.ok(Number(plot.thresholdY) > 0 && Number(plot.thresholdY) < plot.height, JSON.stringify(plot));
  assert.ok(Number(plot.markers) >= 1, JSON.stringify(plot));
  assert.equal(plot.series, "1");
  assert.match(await p.textContent(row), /production · region=eu/);
  await p.screenshot({ path: join(shots, "alert-editor.png"), fullPage: true });

  // The test button sends through the real channel code and shows its error.
  await p.click("button.test");
  const err = await p.waitForSelector(".test-result.delivery-error");
  assert.ok((await err.textContent()).startsWith(`the webhook channel failed: ${dead}`), await err.textContent());

  await p.click("#save");
  await p.waitForSelector("tr[data-alert='ui-orders-stopped']");
  assert.equal(await p.textContent("tr[data-alert='ui-orders-stopped'] .overall"), "closed");

  // Drive the evaluator through minute 6: the incident opens.
  await call("POST", `/api/v1/alerts/evaluate?from=${T0}&to=${T0 + 420}`);
  await p.reload();
  await p.waitForSelector("tr[data-alert='ui-orders-stopped'] .overall [data-state='open']");
  assert.deepEqual(
    await p.$$eval("tr[data-alert='ui-orders-stopped'] .series-state", (rs) => rs.map((r) => r.textContent)),
    ["open production · region=eu"],
  );
  // The open notification cannot be delivered: the list shows the attempt and its error.
  for (let i = 0; i < 100; i++) {
    const o = await call("GET", "/api/v1/alerts/outbox");
    if (o.notifications.some((n) => n.attempts > 0)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await p.reload();
  const failed = await p.waitForSelector("#outbox tr:has(td.delivery-error)");
  const cells = await failed.$$eval("td", (tds) => tds.map((t) => t.textContent));
  assert.equal(cells[0], "UI orders stopped");
  assert.equal(cells[1], "open");
  assert.equal(cells[2], "webhook");
  assert.ok(Number(cells[3]) >= 1);
  assert.ok(cells[4].includes(dead), cells[4]);
  await p.screenshot({ path: join(shots, "alerts.png"), fullPage: true });

  // Through minute 9: data at minute 8 closes it. The history shows it.
  await call("POST", `/api/v1/alerts/evaluate?from=${T0}&to=${T0 + 600}`);
  await p.goto(`${url}/#/incidents`);
  const inc = await p.waitForSelector("tr[data-incident='ui-orders-stopped-1']");
  const got = await inc.evaluate((r) => ({
    state: r.querySelector("[data-state]").dataset.state,
    series: r.querySelector(".series").textContent,
    peak: r.querySelector(".peak").textContent,
    opened: r.querySelector(".opened").textContent,
    closed: r.querySelector(".closed").textContent,
  }));
  const local = (ts) => p.evaluate((t) => {
    const d = new Date(t * 1000);
    const z = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${z(d.getMonth() + 1)}-${z(d.getDate())} ${z(d.getHours())}:${z(d.getMinutes())}`;
  }, ts);
  assert.deepEqual(got, { state: "closed", series: "production · region=eu", peak: "0", opened: await local(T0 + 360), closed: await local(T0 + 480) });
  await p.screenshot({ path: join(shots, "incidents.png") });
  // The alert's own incidents, from its row in the list.
  await p.goto(`${url}/#/alerts`);
  await p.click("tr[data-alert='ui-orders-stopped'] a:text('incidents')");
  await p.waitForSelector("text=of alert ui-orders-stopped");
  assert.deepEqual(await p.$$eval("tr[data-incident]", (rs) => rs.map((r) => r.dataset.incident)), ["ui-orders-stopped-1"]);
  await p.goto(`${url}/#/incidents`);
  await p.waitForSelector("tr[data-incident='ui-orders-stopped-1']");
  await p.selectOption("select[aria-label=state]", "open");
  await p.waitForSelector("text=No open incidents.");

  // A dashboard graph of the metric shades the incident.
  const d = await call("POST", "/api/v1/dashboards?app=webshop", { title: "UI orders", graphs: [{ title: "Orders", metrics: [{ name: "ui_orders", tags: { region: "e*" } }] }, { title: "Other", metrics: [{ name: "order_count" }] }] });
  await p.goto(`${url}/#/d/${d.id}?from=${T0 - 3600}&to=${T0 + 3600}`);
  await drawn(p, 2);
  await p.waitForFunction(() => document.querySelector(".graph[data-title='Orders'] .plot")?.dataset.markers === "1");
  assert.equal(await p.$eval(".graph[data-title='Other'] .plot", (e) => e.dataset.markers), "0", "no marker on a graph of another metric");
  assert.deepEqual(await p.$$eval(".graph[data-title='Orders'] .legend-incident", (ls) => ls.map((l) => l.textContent)), ["incident: UI orders stopped production · region=eu"]);
  assert.equal(await p.$(".graph[data-title='Other'] .legend-incident"), null);
  assert.deepEqual(p.errors, []);
});

test("alert names and incident text are shown as text, never as markup", async () => {
  const name = `<img src=x onerror="window.__xss=1">`;
  await call("POST", "/api/v1/alerts?app=webshop", { name, metric: "ui_orders", description: "<b>bold</b>", condition: { op: ">", threshold: 1e9 } });
  const p = await signedIn();
  await p.goto(`${url}/#/alerts`);
  const link = await p.waitForSelector("a.alert-name:text-is('<img src=x onerror=\"window.__xss=1\">')");
  assert.equal(await p.$("table.alerts img"), null);
  assert.equal(await p.$("table.alerts b"), null);
  await link.click();
  await p.waitForSelector("#f-name");
  assert.equal(await p.inputValue("#f-name"), name);
  assert.equal(await p.$("main img"), null);
  assert.equal(await p.evaluate(() => window.__xss), undefined);

  // "Send test" to a receiver that accepts: the saved alert's name is in it.
  const got = [];
  const rx = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      got.push(JSON.parse(body));
      res.end();
    });
  });
  await new Promise((r) => rx.listen(0, "127.0.0.1", r));
  try {
    await p.click("#add-channel");
    await p.fill("input[aria-label='channel target']", `http://127.0.0.1:${rx.address().port}/hook`);
    await p.click("button.test");
    await p.waitForSelector(".test-result.ok:text('test notification sent')");
    assert.equal(got.length, 1);
    assert.equal(got[0].event, "test");
    assert.equal(got[0].test, true);
    assert.equal(got[0].alert, name);
  } finally {
    rx.close();
  }

  // The text tab shows the form's alert as JSON; a JSON edit reaches the
  // form; YAML pasted in is saved as it is.
  const text = "textarea[aria-label='alert definition']";
  await p.click("#tab-text");
  const json = JSON.parse(await p.inputValue(text));
  assert.equal(json.name, name);
  assert.equal(json.channels.length, 1);
  json.condition.threshold = 5;
  await p.fill(text, JSON.stringify(json));
  await p.click("#tab-form");
  assert.equal(await p.inputValue("input[aria-label=threshold]"), "5");
  await p.click("#tab-text");
  await p.fill(text, "name: from yaml\nmetric: ui_orders\ncondition: {op: '>', threshold: 7}\n");
  await p.click("#save");
  const row = await p.waitForSelector("tr:has(a.alert-name:text-is('from yaml'))");
  const id = await row.getAttribute("data-alert");
  assert.equal(await p.$(`a.alert-name:text-is('${name.replace(/'/g, "\\'")}')`), null, "replaced, not added");
  const saved = await call("GET", `/api/v1/alerts/${id}?app=webshop`);
  assert.deepEqual(saved.condition, { op: ">", threshold: 7 });

  // Delete, after confirming.
  p.once("dialog", (d) => d.accept());
  await p.click("a.alert-name:text-is('from yaml')");
  await p.click("#delete");
  await p.waitForSelector("tr[data-alert='ui-orders-stopped']");
  assert.equal(await p.$(`tr[data-alert='${id}']`), null);
  assert.ok(!(await call("GET", "/api/v1/alerts?app=webshop")).alerts.some((a) => a.id === id));
  assert.deepEqual(p.errors, []);
});

test("the alert preview draws what a baseline compares with: the week-ago trigger level, the rolling band", async () => {
  const WEEK = 7 * 86400;
  // ui_visits in region eu, minutes 0-9 of T0 and the same minutes a week earlier.
  const now = [10, 12, 8, 10, 11, 9, 30, 10, 2, 10];
  const ago = [20, 20, 16, 20, 4, 20, 20, 20, 20, 10];
  const point = (t, value) => ({ kind: "counter", name: "ui_visits", value, tags: { region: "eu" }, ts: t + 10 });
  const points = [...now.map((v, m) => point(T0 + m * 60, v)), ...ago.map((v, m) => point(T0 - WEEK + m * 60, v))];
  assert.equal((await call("POST", "/api/v1/push", { app: "webshop", env: "production", points })).accepted, 20);

  const p = await signedIn();
  await p.goto(`${url}/#/alerts/new`);
  await p.fill("#f-name", "UI visits baseline");
  await p.selectOption("#f-metric", "ui_visits");
  await p.selectOption("#f-field", "sum");
  await p.selectOption("#f-env", "production");
  await p.fill("#f-tags", "region:*");
  // No warm-up: the first minute that holds opens an incident, which ties
  // what the chart draws to what the server's evaluator judges.
  await p.fill("#f-warm-up-minutes", "0");
  const guidesOf = async (want) => {
    await p.waitForFunction((w) => JSON.parse(document.querySelector("#preview-plot")?.dataset.guides || "[]").some((g) => g.label === w), want);
    return p.$eval("#preview-plot", (e) => ({ ...e.dataset, legend: [...e.querySelectorAll(".legend-guide")].map((l) => l.textContent) }));
  };
  const close = (a, b) => Math.abs(a - b) < 1e-9 * Math.max(1, Math.abs(b));

  // A drop of more than half against a week ago: the week-ago minutes, moved
  // a week on, at half their value (only where the week-ago minute has data).
  await p.selectOption("select[aria-label='condition type']", "week_ago");
  await p.selectOption("select[aria-label=operator]", "<");
  await p.fill("input[aria-label='change percent']", "-50");
  const week = await guidesOf("ui_visits eu: a week ago −50%");
  assert.equal(week.baseline, "week_ago");
  const [wg] = JSON.parse(week.guides);
  assert.deepEqual(wg.points, ago.map((v, m) => [T0 + m * 60, v - Math.abs(v) * 0.5]));
  assert.ok(Number(week.guideSegments) >= 1, JSON.stringify(week));
  assert.deepEqual(week.legend, ["ui_visits eu: a week ago −50%"]);
  assert.equal(week.threshold, "", "no threshold line for a baseline");
  // The first minute below its level is minute 5 (9 < 20 / 2).
  const opened = () => p.$$eval("#preview-incidents tr[data-opened]", (rs) => rs.map((r) => Number(r.dataset.opened)));
  assert.deepEqual(await opened(), [T0 + 300]);

  // Above the mean of the 3 minutes before plus 2 population standard
  // deviations: the band where 2 or more of those minutes have data.
  await p.selectOption("select[aria-label='condition type']", "rolling");
  await p.selectOption("select[aria-label=operator]", ">");
  await p.fill("input[aria-label='window minutes']", "3");
  await p.fill("input[aria-label=deviations]", "2");
  const rolling = await guidesOf("ui_visits eu: 3-minute mean ± 2 σ");
  assert.equal(rolling.baseline, "rolling");
  const want = [];
  for (let m = 0; m < 15; m++) {
    const xs = [m - 3, m - 2, m - 1].filter((i) => i >= 0 && i < now.length).map((i) => now[i]);
    if (xs.length < 2) continue;
    const mean = xs.reduce((a, b) => a + b) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length);
    want.push([T0 + m * 60, mean + 2 * sd, mean - 2 * sd]);
  }
  const [rg] = JSON.parse(rolling.guides);
  assert.equal(rg.points.length, want.length, JSON.stringify(rg.points));
  rg.points.forEach((got, i) => {
    assert.equal(got[0], want[i][0]);
    assert.ok(close(got[1], want[i][1]) && close(got[2], want[i][2]), `${JSON.stringify(got)} vs ${JSON.stringify(want[i])}`);
  });
  // Minute 6 (30) is the only one above its band's upper edge.
  assert.deepEqual(want.filter(([t, upper]) => (now[(t - T0) / 60] ?? 0) > upper).map(([t]) => t), [T0 + 360]);
  assert.deepEqual(await opened(), [T0 + 360]);
  assert.ok(Number(rolling.guideSegments) >= 2, JSON.stringify(rolling));
  // Hovering near minute 6 lists the band's edges beside the value.
  const over = await (await p.$("#preview-plot .u-over")).boundingBox();
  const to = Math.floor(Date.now() / 60000) * 60;
  const from = to - 6 * 3600;
  await p.mouse.move(over.x + (over.width * (T0 + 360 - from)) / (to - 60 - from), over.y + over.height / 2);
  const tip = await p.waitForSelector("#preview-plot .tooltip:not([hidden])");
  const guideRow = await tip.$eval(".tip-guide", (r) => r.textContent);
  assert.match(guideRow, /^ui_visits eu: 3-minute mean ± 2 σ.+ – .+$/);
  await p.screenshot({ path: join(shots, "alert-baseline.png"), fullPage: true });
  assert.deepEqual(p.errors, []);
});

// ---- dashboards: the form editor, stacked areas, refresh, themes ----

test("the form editor builds a dashboard; the text tab shows the same definition; areas stack", async () => {
  const p = await signedIn();
  await p.click("text=New dashboard");
  await p.waitForSelector("#dashboard-form");
  await p.fill("[aria-label='dashboard title']", "Form made");
  const g = p.locator("fieldset.graph-part").nth(0);
  await g.locator("[aria-label='graph title']").fill("Shoppers stacked");
  await g.locator("[aria-label=chart]").selectOption("area");
  await g.locator("[aria-label=format]").selectOption("duration");
  await g.locator("[aria-label='format input']").selectOption("s");
  await g.locator("[aria-label='label template']").fill("%region%");
  await g.locator("[aria-label='draw missing minutes as 0']").check();
  const m = g.locator(".metric-part").nth(0);
  await m.locator("[aria-label='metric name']").fill("active_shoppers");
  await m.locator("[aria-label=fields]").fill("max");
  await m.locator("[aria-label='tag filters']").fill("region:*");
  await m.locator("[aria-label='group by']").fill("region");
  await m.locator("[aria-label=across]").selectOption("sum");
  await p.click("#add-graph");
  const g2 = p.locator("fieldset.graph-part").nth(1);
  await g2.locator("[aria-label='graph title']").fill("Orders");
  await g2.locator("[aria-label=chart]").selectOption("number");
  await g2.locator("[aria-label='number value']").selectOption("sum");
  await g2.locator("[aria-label='metric name']").fill("order_count");
  await p.screenshot({ path: join(shots, "dashboard-form.png"), fullPage: true });

  await p.click("#tab-text");
  const text = JSON.parse(await p.inputValue("textarea"));
  const want = {
    title: "Form made",
    description: "What this dashboard is for",
    graphs: [
      { title: "Shoppers stacked", chart: "area", format: "duration", format_input: "s", label: "%region%", draw_null_as_zero: true,
        metrics: [{ name: "active_shoppers", fields: ["max"], tags: { region: "*" }, group_by: ["region"], across: "sum" }] },
      { title: "Orders", chart: "number", value: "sum", metrics: [{ name: "order_count" }] },
    ],
  };
  assert.deepEqual(text, want);
  // A JSON edit of the text shows in the form.
  want.graphs[1].title = "Orders in range";
  await p.fill("textarea", JSON.stringify(want));
  await p.click("#tab-form");
  assert.equal(await p.locator("fieldset.graph-part").nth(1).locator("[aria-label='graph title']").inputValue(), "Orders in range");
  await p.click("#save");
  await p.waitForSelector("h1:text('Form made')");
  const saved = await call("GET", "/api/v1/dashboards/form-made?app=webshop");
  assert.deepEqual({ title: saved.title, description: saved.description, graphs: saved.graphs }, want);
  // Editing it again loads the form from the stored definition.
  await p.click("text=Edit");
  await p.waitForSelector("#dashboard-form");
  assert.equal(await p.locator("fieldset.graph-part").nth(0).locator("[aria-label=chart]").inputValue(), "area");
  assert.equal(await p.locator("fieldset.graph-part").nth(0).locator("[aria-label='group by']").inputValue(), "region");

  // The area graph stacks: its top is the per-minute sum of both regions,
  // as an independent query says.
  const from = Math.floor(Date.now() / 3600000) * 3600 - 4 * 3600;
  const to = from + 4 * 3600;
  await p.goto(`${url}/#/d/form-made?from=${from}&to=${to}`);
  await drawn(p, 2);
  const stackMax = Number(await p.$eval(".graph[data-title='Shoppers stacked'] .plot", (e) => e.dataset.stackMax));
  const q = await call("POST", "/api/v1/query", { queries: [{ app: "webshop", metric: "active_shoppers", field: "max", from, to, step: 60, tag: ["region:*"], group_by: ["region"], across: "sum" }] });
  const series = q.results[0].series;
  assert.equal(series.length, 2);
  const totals = new Map();
  for (const s of series) for (const [t, v] of s.points) totals.set(t, (totals.get(t) ?? 0) + (v ?? 0));
  const most = Math.max(...totals.values());
  const largestLine = Math.max(...series.flatMap((s) => s.points.map(([, v]) => v ?? 0)));
  assert.ok(most > largestLine, "the stack is higher than any one line");
  assert.ok(Math.abs(stackMax - most) < 1e-9, `stack top ${stackMax}, sum of regions ${most}`);
  assert.deepEqual(p.errors, []);
});

test("a live dashboard shows a new minute without reloading; a zoomed one is not refreshed", async () => {
  const now = Math.floor(Date.now() / 1000);
  const push = (value, ts) => call("POST", "/api/v1/push", { app: "webshop", points: [{ kind: "counter", name: "ui_live", value, ts }] });
  await push(5, now - 120);
  const d = await call("POST", "/api/v1/dashboards?app=webshop", { title: "Live", graphs: [
    { title: "Live orders", chart: "number", value: "sum", draw_null_as_zero: true, metrics: [{ name: "ui_live" }] },
    { title: "Live line", metrics: [{ name: "ui_live" }] },
  ] });
  const p = await signedIn();
  const big = () => p.textContent(".graph[data-title='Live orders'] .big");
  await p.goto(`${url}/#/d/${d.id}?range=1h&refresh=1`);
  await p.waitForFunction(() => document.querySelector(".graph[data-title='Live orders'] .big")?.textContent === "5");
  await p.evaluate(() => (window.__sameDocument = true));
  await push(7, now - 60);
  await p.waitForFunction(() => document.querySelector(".graph[data-title='Live orders'] .big")?.textContent === "12");
  assert.equal(await p.evaluate(() => window.__sameDocument), true, "the page was not reloaded");

  // Drag to zoom: a fixed range, so the timer stops.
  const over = await p.$(".graph[data-title='Live line'] .u-over");
  const box = await over.boundingBox();
  await p.mouse.move(box.x + box.width * 0.2, box.y + box.height / 2);
  await p.mouse.down();
  await p.mouse.move(box.x + box.width * 0.99, box.y + box.height / 2, { steps: 5 });
  await p.mouse.up();
  await p.waitForFunction(() => location.hash.includes("from=") && !location.hash.includes("range="));
  await p.waitForSelector("#refreshed:text-matches('automatic refresh paused')");
  const refreshes = await p.evaluate(() => document.body.dataset.refreshes);
  await push(100, now - 60);
  // Three refresh intervals pass without a refresh.
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(await p.evaluate(() => document.body.dataset.refreshes), refreshes);
  assert.doesNotMatch(await big(), /112/);
  assert.deepEqual(p.errors, []);
});

test("dark theme follows the system; at phone width no page scrolls sideways", async () => {
  const background = async (colorScheme) => {
    const p = await signedIn(390, { colorScheme });
    const bg = await p.evaluate(() => getComputedStyle(document.body).backgroundColor);
    return { p, bg };
  };
  const light = await background("light");
  const dark = await background("dark");
  assert.equal(light.bg, "rgb(247, 248, 250)");
  assert.equal(dark.bg, "rgb(20, 22, 27)");
  const p = dark.p;
  const views = [
    ["#/dashboards", "text=Webshop overview"],
    ["#/d/webshop-overview", ".graph .plot[data-series]"],
    ["#/auto", ".graph .plot[data-series]"],
    ["#/explore?metric=order_item_count", ".graph .plot[data-series]"],
    ["#/new", "#dashboard-form"],
    ["#/alerts", "h1:text('Alerts')"],
    ["#/alerts/new", "#preview-plot[data-previewed]"],
    ["#/incidents", "h1:text('Incidents')"],
  ];
  for (const [hash, ready] of views) {
    await p.goto(`${url}/${hash}`);
    await p.waitForSelector(ready);
    const { scroll, inner } = await p.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
    assert.ok(scroll <= inner, `${hash} is ${scroll} px wide at ${inner} px`);
  }
  await p.goto(`${url}/#/d/webshop-overview`);
  await drawn(p, 4);
  await p.screenshot({ path: join(shots, "phone-dark.png") });
  assert.deepEqual([...light.p.errors, ...p.errors], []);
});

test("a read key sees alerts, incidents and markers but cannot save or read the outbox", async () => {
  const { key } = await call("POST", "/api/v1/apps/webshop/keys", { scope: "read", name: "ui test" });
  const p = await page();
  await p.goto(`${url}/?key=${key}`);
  await p.waitForSelector("text=Webshop overview");
  await p.goto(`${url}/#/alerts`);
  await p.waitForSelector("tr[data-alert='ui-orders-stopped']");
  await p.waitForSelector("text=Delivery failures show to an admin key of all apps.");
  await p.goto(`${url}/#/incidents`);
  await p.waitForSelector("tr[data-incident='ui-orders-stopped-1']");
  await p.goto(`${url}/#/alerts/edit/ui-orders-stopped`);
  await p.waitForSelector("#preview-plot[data-previewed]");
  await p.click("#save");
  await p.waitForSelector(".error:text-matches('admin', 'i')");
  assert.equal((await call("GET", "/api/v1/alerts/ui-orders-stopped?app=webshop")).name, "UI orders stopped");
  assert.deepEqual(p.errors, []);
});
