// A collapsible JSON tree built from <details>/<summary>, so it is keyboard
// accessible without extra code. Children are rendered lazily on first open.

import { h } from "./dom.js";

function typeOf(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function leaf(value) {
  const t = typeOf(value);
  const text = t === "string" ? JSON.stringify(value) : String(value);
  return h("span", { class: `jt-val jt-${t}`, text });
}

function preview(value) {
  const t = typeOf(value);
  if (t === "array") return `Array(${value.length})`;
  const keys = Object.keys(value);
  const head = keys.slice(0, 4).join(", ");
  return `{${head}${keys.length > 4 ? ", …" : ""}}`;
}

function node(key, value, depth, opts) {
  const t = typeOf(value);
  const keyEl = key === null ? null : h("span", { class: "jt-key", text: `${key}` });
  if (t !== "object" && t !== "array") {
    return h("div", { class: "jt-row", role: "treeitem" }, keyEl, keyEl ? h("span", { class: "jt-colon", text: ": " }) : null, leaf(value));
  }
  const entries = t === "array" ? value.map((v, i) => [i, v]) : Object.entries(value);
  if (!entries.length) {
    return h("div", { class: "jt-row", role: "treeitem" }, keyEl, keyEl ? h("span", { class: "jt-colon", text: ": " }) : null,
      h("span", { class: "jt-val jt-empty", text: t === "array" ? "[]" : "{}" }));
  }
  const details = h("details", { class: "jt-node", role: "treeitem" });
  const summary = h("summary", {}, keyEl, keyEl ? h("span", { class: "jt-colon", text: ": " }) : null,
    h("span", { class: "jt-preview", text: preview(value) }));
  details.append(summary);
  const body = h("div", { class: "jt-children", role: "group" });
  details.append(body);
  let rendered = false;
  const render = () => {
    if (rendered) return;
    rendered = true;
    for (const [k, v] of entries) body.append(node(k, v, depth + 1, opts));
  };
  details.addEventListener("toggle", () => details.open && render());
  if (depth < opts.expandDepth) {
    details.open = true;
    render();
  }
  return details;
}

/** Render `value` as a tree. `expandDepth`: levels opened initially. */
export function jsonTree(value, { expandDepth = 1, label } = {}) {
  return h("div", { class: "json-tree", role: "tree", "aria-label": label || "JSON value" }, node(null, value, 0, { expandDepth }));
}
