// Draw a graph from GET /assistants/{id}/graph ({nodes, edges}) as SVG with a
// simple layered (Sugiyama-style) layout: break cycles by DFS, assign layers by
// longest path, order each layer by barycentres, then place nodes top-down.

import { h } from "./dom.js";

const NODE_H = 38;
const LAYER_GAP = 74;
const NODE_GAP = 28;
const CHAR_W = 7.4;
const PAD = 24;

function label(node) {
  if (node.id === "__start__") return "start";
  if (node.id === "__end__") return "end";
  const name = node.data && typeof node.data === "object" && node.data.name ? node.data.name : node.id;
  return String(name);
}

export function layout(graph) {
  const nodes = (graph.nodes || []).map((n) => ({ id: String(n.id), label: label(n), raw: n }));
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const edges = (graph.edges || [])
    .filter((e) => byId.has(String(e.source)) && byId.has(String(e.target)))
    .map((e) => ({ source: String(e.source), target: String(e.target), conditional: Boolean(e.conditional), label: e.data ?? null }));
  const out = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) out.get(e.source).push(e);

  // 1. Break cycles: an edge to a node on the current DFS stack is a back edge.
  const state = new Map();
  const visit = (id) => {
    state.set(id, 1);
    for (const e of out.get(id)) {
      const s = state.get(e.target);
      if (s === 1) e.back = true;
      else if (!s) visit(e.target);
    }
    state.set(id, 2);
  };
  if (byId.has("__start__")) visit("__start__");
  for (const n of nodes) if (!state.get(n.id)) visit(n.id);

  // 2. Longest-path layering over forward edges (a DAG now).
  const layer = new Map(nodes.map((n) => [n.id, 0]));
  const indeg = new Map(nodes.map((n) => [n.id, 0]));
  for (const e of edges) if (!e.back && e.source !== e.target) indeg.set(e.target, indeg.get(e.target) + 1);
  const queue = nodes.filter((n) => indeg.get(n.id) === 0).map((n) => n.id);
  while (queue.length) {
    const id = queue.shift();
    for (const e of out.get(id)) {
      if (e.back || e.source === e.target) continue;
      layer.set(e.target, Math.max(layer.get(e.target), layer.get(id) + 1));
      indeg.set(e.target, indeg.get(e.target) - 1);
      if (indeg.get(e.target) === 0) queue.push(e.target);
    }
  }
  let maxLayer = Math.max(0, ...layer.values());
  if (byId.has("__end__")) {
    const others = nodes.filter((n) => n.id !== "__end__").map((n) => layer.get(n.id));
    maxLayer = Math.max(0, ...others) + 1;
    layer.set("__end__", maxLayer);
  }
  const layers = Array.from({ length: maxLayer + 1 }, () => []);
  for (const n of nodes) layers[layer.get(n.id)].push(n.id);

  // 3. Order within layers by the mean position of neighbours (a few sweeps).
  const pos = new Map();
  layers.forEach((ids) => ids.forEach((id, i) => pos.set(id, i)));
  const preds = new Map(nodes.map((n) => [n.id, []]));
  const succs = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) {
    if (e.back) continue;
    preds.get(e.target).push(e.source);
    succs.get(e.source).push(e.target);
  }
  const sweep = (ids, neigh) => {
    const bary = (id) => {
      const ns = neigh.get(id);
      return ns.length ? ns.reduce((a, n) => a + pos.get(n), 0) / ns.length : pos.get(id);
    };
    ids.sort((a, b) => bary(a) - bary(b));
    ids.forEach((id, i) => pos.set(id, i));
  };
  for (let k = 0; k < 4; k++) {
    for (let l = 1; l < layers.length; l++) sweep(layers[l], preds);
    for (let l = layers.length - 2; l >= 0; l--) sweep(layers[l], succs);
  }

  // 4. Coordinates: each layer centred horizontally.
  for (const n of nodes) n.w = Math.max(n.id.startsWith("__") ? 64 : 92, n.label.length * CHAR_W + 32);
  const widths = layers.map((ids) => ids.reduce((a, id) => a + byId.get(id).w, 0) + NODE_GAP * Math.max(0, ids.length - 1));
  const width = Math.max(...widths, 160) + PAD * 2;
  layers.forEach((ids, l) => {
    let x = (width - widths[l]) / 2;
    for (const id of ids) {
      const n = byId.get(id);
      n.x = x + n.w / 2;
      n.y = PAD + l * (NODE_H + LAYER_GAP) + NODE_H / 2;
      x += n.w + NODE_GAP;
    }
  });
  const height = PAD * 2 + layers.length * NODE_H + (layers.length - 1) * LAYER_GAP;
  return { nodes, edges, byId, width, height };
}

function edgePath(e, byId, width) {
  const s = byId.get(e.source);
  const t = byId.get(e.target);
  if (e.source === e.target) {
    const x = s.x + s.w / 2;
    return `M${x},${s.y - 8} C${x + 40},${s.y - 30} ${x + 40},${s.y + 30} ${x},${s.y + 8}`;
  }
  if (e.back || t.y <= s.y) {
    // Route back edges around the right of both nodes.
    const x1 = s.x + s.w / 2;
    const x2 = t.x + t.w / 2;
    const bend = Math.min(width - 6, Math.max(x1, x2) + 46);
    return `M${x1},${s.y} C${bend},${s.y} ${bend},${t.y} ${x2 + 2},${t.y}`;
  }
  const y1 = s.y + NODE_H / 2;
  const y2 = t.y - NODE_H / 2 - 2;
  const my = (y1 + y2) / 2;
  return `M${s.x},${y1} C${s.x},${my} ${t.x},${my} ${t.x},${y2}`;
}

let svgSeq = 0;

/**
 * Render an SVG diagram. `status` maps node id -> "active" | "done" | "error" | "interrupted".
 * Returns the <svg>; call `setStatus` on the result to update highlights in place.
 */
export function renderGraph(graph, { title = "Graph", status = {} } = {}) {
  const g = layout(graph);
  const markerId = `arrow-${++svgSeq}`;
  const svg = h("svg:svg", {
    class: "graph-svg", viewBox: `0 0 ${g.width} ${g.height}`, width: g.width, height: g.height,
    role: "img", "aria-label": `${title}: ${g.nodes.length} nodes, ${g.edges.length} edges`,
  });
  svg.append(h("svg:title", { text: `${title}: ${g.nodes.map((n) => n.label).join(", ")}` }));
  svg.append(h("svg:defs", {},
    h("svg:marker", { id: markerId, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      h("svg:path", { d: "M0,0 L10,5 L0,10 z", class: "graph-arrow" }))));
  const edgeLayer = h("svg:g", { class: "graph-edges" });
  for (const e of g.edges) {
    edgeLayer.append(h("svg:path", {
      d: edgePath(e, g.byId, g.width), class: ["graph-edge", e.conditional && "conditional", e.back && "back"],
      "marker-end": `url(#${markerId})`, dataset: { source: e.source, target: e.target },
    }));
  }
  svg.append(edgeLayer);
  // Subgraph nodes ("child:child_step") get a labelled box around them.
  const clusters = new Map();
  for (const n of g.nodes) {
    const colon = n.id.indexOf(":");
    if (colon <= 0 || n.id.startsWith("__")) continue;
    const key = n.id.slice(0, colon);
    if (!clusters.has(key)) clusters.set(key, []);
    clusters.get(key).push(n);
  }
  const clusterLayer = h("svg:g", { class: "graph-clusters" });
  for (const [key, members] of clusters) {
    const x1 = Math.min(...members.map((n) => n.x - n.w / 2)) - 12;
    const x2 = Math.max(...members.map((n) => n.x + n.w / 2)) + 12;
    const y1 = Math.min(...members.map((n) => n.y)) - NODE_H / 2 - 22;
    const y2 = Math.max(...members.map((n) => n.y)) + NODE_H / 2 + 10;
    clusterLayer.append(h("svg:g", { class: "graph-cluster", dataset: { cluster: key } },
      h("svg:rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, rx: 12 }),
      h("svg:text", { x: x1 + 10, y: y1 + 14, text: key })));
  }
  svg.insertBefore(clusterLayer, edgeLayer);
  const nodeLayer = h("svg:g", { class: "graph-nodes" });
  for (const n of g.nodes) {
    const terminal = n.id === "__start__" || n.id === "__end__";
    const group = h("svg:g", {
      class: ["graph-node", terminal && "terminal", n.id.includes(":") && "subgraph"],
      transform: `translate(${n.x - n.w / 2},${n.y - NODE_H / 2})`, dataset: { node: n.id },
    });
    group.append(h("svg:rect", { width: n.w, height: NODE_H, rx: terminal ? NODE_H / 2 : 9 }));
    const colon = n.label.indexOf(":");
    const shown = colon > 0 && !terminal ? n.label.slice(colon + 1) : n.label;
    group.append(h("svg:text", { x: n.w / 2, y: NODE_H / 2 + 4.5, "text-anchor": "middle", text: shown }));
    group.append(h("svg:title", { text: n.id }));
    nodeLayer.append(group);
  }
  svg.append(nodeLayer);
  svg.setStatus = (map) => {
    for (const el of nodeLayer.querySelectorAll(".graph-node")) {
      el.classList.remove("active", "done", "error", "interrupted");
      const s = map[el.dataset.node];
      if (s) el.classList.add(s);
    }
  };
  svg.setStatus(status);
  return svg;
}
