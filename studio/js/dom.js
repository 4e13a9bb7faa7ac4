// Small DOM helpers shared by every view. Nothing here touches innerHTML with
// untrusted text: `h` builds nodes and sets text through textContent.

/**
 * Create an element. `attrs` keys: `class`, `text`, `dataset`, `on` (event map),
 * boolean attributes (true adds, false/null skips), anything else via setAttribute.
 */
export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === "value" && !svg) el.value = value;
    else if (key === "checked" && !svg) el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** Replace the children of `el` with `children`. */
export function mount(el, ...children) {
  clear(el);
  return append(el, children);
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "";
}

export function relTime(iso) {
  if (!iso) return "";
  const then = new Date(iso).getTime();
  const secs = Math.round((Date.now() - then) / 1000);
  if (Number.isNaN(secs)) return String(iso);
  if (secs < 5) return "just now";
  if (secs < 60) return `${secs}s ago`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m ago`;
  if (secs < 86400) return `${Math.floor(secs / 3600)}h ago`;
  return new Date(iso).toLocaleDateString();
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60000)}m ${Math.round((ms % 60000) / 1000)}s`;
}

/** A status pill; the colour comes from the status name via CSS. */
export function badge(status, extra = "") {
  const s = String(status || "unknown");
  return h("span", { class: `badge badge-${s.replace(/[^a-z_-]/gi, "")} ${extra}`.trim(), text: s });
}

const ICONS = {
  sun: "M12 4V2m0 20v-2m8-8h2M2 12h2m13.66-5.66 1.41-1.41M4.93 19.07l1.41-1.41m0-11.32L4.93 4.93m14.14 14.14-1.41-1.41M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8z",
  moon: "M21 12.8A9 9 0 1 1 11.2 3a7 7 0 0 0 9.8 9.8z",
  plus: "M12 5v14M5 12h14",
  trash: "M4 7h16M10 11v6m4-6v6M6 7l1 13h10l1-13M9 7V4h6v3",
  refresh: "M20 11a8 8 0 1 0-2.3 5.7M20 4v7h-7",
  send: "M4 12 20 4l-6 16-3-7-7-1z",
  stop: "M7 7h10v10H7z",
  menu: "M4 6h16M4 12h16M4 18h16",
  graph: "M6 5a2 2 0 1 0 0 .01M18 12a2 2 0 1 0 0 .01M6 19a2 2 0 1 0 0 .01M8 5.5l8 5.5M8 18.5l8-5.5",
  chat: "M4 5h16v11H8l-4 4z",
  fork: "M7 4v6a4 4 0 0 0 4 4h2a4 4 0 0 1 4 4v2M7 4a2 2 0 1 0 0 .01M17 4v4",
  edit: "M4 20h4L19 9l-4-4L4 16zM14 6l4 4",
  check: "M5 12l5 5 9-10",
  x: "M6 6l12 12M18 6 6 18",
  pause: "M8 5v14M16 5v14",
  alert: "M12 8v5m0 3v.01M10.3 3.9 2.4 18a2 2 0 0 0 1.7 3h15.8a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z",
  tool: "M14.7 6.3a4 4 0 0 0-5.4 5.4L3 18l3 3 6.3-6.3a4 4 0 0 0 5.4-5.4l-2.5 2.5-2.5-.5-.5-2.5z",
  copy: "M9 9h11v11H9zM5 15H4V4h11v1",
  chevron: "M9 6l6 6-6 6",
};

export function icon(name, size = 16) {
  return h("svg:svg", {
    class: `icon icon-${name}`, width: size, height: size, viewBox: "0 0 24 24", "aria-hidden": "true",
    fill: "none", stroke: "currentColor", "stroke-width": 2, "stroke-linecap": "round", "stroke-linejoin": "round",
  }, h("svg:path", { d: ICONS[name] || "" }));
}

/** A button with an icon and a label (the label may be visually hidden). */
export function button(label, { icon: iconName, cls = "", onClick, title, hideLabel = false, type = "button", attrs = {} } = {}) {
  return h("button", {
    type, class: `btn ${cls}`.trim(), title: title || (hideLabel ? label : undefined),
    "aria-label": hideLabel ? label : undefined, on: onClick ? { click: onClick } : undefined, ...attrs,
  }, iconName ? icon(iconName) : null, hideLabel ? null : h("span", { text: label }));
}

let toastSeq = 0;
/** Show a transient message in the live region. kind: info | error | success. */
export function toast(message, kind = "info", ms = 5000) {
  const host = document.getElementById("toasts");
  if (!host) return;
  const id = `toast-${++toastSeq}`;
  const el = h("div", { class: `toast toast-${kind}`, id, role: kind === "error" ? "alert" : "status" },
    h("span", { text: message }),
    h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", on: { click: () => el.remove() } }, icon("x", 14)));
  host.append(el);
  setTimeout(() => el.remove(), ms);
}

/** Parse JSON from a textarea; returns {ok, value, error}. Empty text gives `fallback`. */
export function parseJson(text, fallback = undefined) {
  const t = String(text ?? "").trim();
  if (!t) return { ok: true, value: fallback };
  try {
    return { ok: true, value: JSON.parse(t) };
  } catch (err) {
    return { ok: false, error: err.message };
  }
}

export function pretty(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}
