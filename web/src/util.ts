// DOM building without innerHTML (every string becomes a text node, so
// user-provided text is always escaped), the API client and value formats.

type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, unknown> = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v as EventListener);
    } else if (k === "value") {
      (el as HTMLInputElement).value = String(v);
    } else if (k === "checked") {
      (el as HTMLInputElement).checked = Boolean(v);
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** One entry of `GET /api/v1/metrics`. */
export interface Metric {
  name: string;
  kind: "counter" | "gauge" | "distribution";
  env: string;
  tags: Record<string, string[]>;
  tag_value_counts: Record<string, number>;
  series: number;
  last_seen: number | null;
}

/** The fields a metric of each kind has, the default first. */
export const FIELDS: Record<string, string[]> = {
  counter: ["sum", "rate"],
  gauge: ["last", "mean", "min", "max"],
  distribution: ["mean", "count", "sum", "min", "max", "p50", "p75", "p90", "p95", "p99", "p999"],
};

const KEY = "minutely.key";
export const session = {
  key: (): string | null => sessionStorage.getItem(KEY),
  setKey: (k: string) => sessionStorage.setItem(KEY, k),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

/** A call of the public HTTP API with the session's key. */
export async function api(
  method: string,
  path: string,
  body?: string,
  contentType = "application/json",
): Promise<any> {
  const headers: Record<string, string> = { Authorization: `Bearer ${session.key() ?? ""}` };
  if (body !== undefined) headers["Content-Type"] = contentType;
  const r = await fetch(path, { method, headers, body });
  const text = await r.text();
  if (!r.ok) {
    let msg = text;
    try {
      msg = JSON.parse(text).error ?? text;
    } catch {
      /* not JSON */
    }
    throw new ApiError(r.status, msg || `HTTP ${r.status}`);
  }
  const type = r.headers.get("Content-Type") ?? "";
  return type.includes("json") ? (text ? JSON.parse(text) : null) : text;
}

export function qs(params: Record<string, string | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : "";
}

// ---- value formats (DESIGN section 4) ----

const DURATION_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1e3, min: 6e4, h: 3.6e6 };
const SIZE_BYTES: Record<string, number> = { bit: 1 / 8, byte: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

function num(v: number, digits = 3): string {
  const a = Math.abs(v);
  if (a >= 1e9) return trim((v / 1e9).toPrecision(digits)) + "G";
  if (a >= 1e6) return trim((v / 1e6).toPrecision(digits)) + "M";
  if (a >= 1e4) return trim((v / 1e3).toPrecision(digits)) + "k";
  if (a === 0) return "0";
  if (a >= 1) return trim(v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2));
  return trim(v.toPrecision(2));
}
function trim(s: string): string {
  return s.includes(".") && !s.includes("e") ? s.replace(/\.?0+$/, "") : s;
}

export interface FormatSpec {
  format?: string;
  format_input?: string;
}

/** Formats a value for axes and tooltips. `step` is the bucket length in seconds. */
export function formatValue(v: number | null | undefined, spec: FormatSpec, step: number): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  switch (spec.format) {
    case "percent":
      return num(v) + "%";
    case "throughput":
      return num(v / (step / 60)) + "/min";
    case "duration": {
      const ms = v * (DURATION_MS[spec.format_input ?? "ms"] ?? 1);
      const a = Math.abs(ms);
      if (a === 0) return "0";
      if (a < 1) return num(ms * 1000) + "µs";
      if (a < 1000) return num(ms) + "ms";
      if (a < 60_000) return num(ms / 1000) + "s";
      if (a < 3_600_000) return num(ms / 60_000) + "min";
      return num(ms / 3_600_000) + "h";
    }
    case "size": {
      let b = v * (SIZE_BYTES[spec.format_input ?? "byte"] ?? 1);
      const units = ["B", "KiB", "MiB", "GiB", "TiB"];
      let i = 0;
      while (Math.abs(b) >= 1024 && i < units.length - 1) {
        b /= 1024;
        i++;
      }
      return num(b) + " " + units[i];
    }
    default:
      return num(v);
  }
}

export function fmtTime(ts: number, withDate = false): string {
  const d = new Date(ts * 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  const t = `${p(d.getHours())}:${p(d.getMinutes())}`;
  return withDate ? `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${t}` : t;
}

export function ago(ts: number | null): string {
  if (!ts) return "never";
  const s = Date.now() / 1000 - ts;
  if (s < 120) return "just now";
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** Downloads text as a file. */
export function download(name: string, text: string, type: string) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
