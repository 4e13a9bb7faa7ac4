// Assistant screen: identity, graph diagram, schemas and configuration.

import { api } from "./api.js";
import { h, mount, button, shortId, fmtTime, toast, parseJson } from "./dom.js";
import { renderGraph } from "./graph.js";
import { jsonTree } from "./jsontree.js";
import { schemaView, schemaForm, isChatSchema } from "./schema.js";
import { store, newThread, refreshThreads } from "./app.js";
import { tabs } from "./tabs.js";
import { AUTOSTART_PREFIX } from "./runstate.js";


/** A form to start a new thread with a first run, built from the input/config schemas. */
function tryItCard(a, schemas) {
  const input = schemas.input_schema;
  const config = schemas.config_schema;
  const chat = isChatSchema(input);
  const simple = !chat && input && input.properties && Object.keys(input.properties).length;
  let readInput;
  let inputEl;
  if (chat) {
    const ta = h("textarea", { id: "try-message", rows: 2, placeholder: "Hello!" });
    inputEl = h("div", { class: "field" }, h("label", { for: "try-message", text: "First message" }), ta);
    readInput = () => (ta.value.trim() ? { ok: true, value: { messages: [{ role: "user", content: ta.value.trim() }] } } : { ok: false, error: "Type a message first" });
  } else if (simple) {
    const form = schemaForm(input, {}, "try-input");
    inputEl = h("fieldset", { class: "fieldset" }, h("legend", { text: "Input" }), form.el);
    readInput = () => form.read();
  } else {
    const ta = h("textarea", { id: "try-json", rows: 3, class: "mono", spellcheck: "false", placeholder: '{"key": "value"}' });
    inputEl = h("div", { class: "field" }, h("label", { for: "try-json", text: "Input (JSON)" }), ta,
      h("p", { class: "hint", text: "This graph publishes no input schema, so the input is free-form JSON." }));
    readInput = () => parseJson(ta.value, null);
  }
  const cfgProps = config && config.properties && Object.keys(config.properties).length;
  const cfgForm = cfgProps ? schemaForm(config, {}, "try-config") : null;
  const submit = async (ev) => {
    ev.preventDefault();
    const got = readInput();
    if (!got.ok) {
      toast(got.error, "error");
      return;
    }
    const cfg = cfgForm ? cfgForm.read() : { ok: true, value: {} };
    if (!cfg.ok) {
      toast(cfg.error, "error");
      return;
    }
    try {
      const t = await api.createThread({ metadata: { graph_id: a.graph_id, assistant_id: a.assistant_id } });
      const run = { input: got.value };
      if (cfg.value && Object.keys(cfg.value).length) run.config = { configurable: cfg.value };
      sessionStorage.setItem(AUTOSTART_PREFIX + t.thread_id, JSON.stringify(run));
      store.selectedAssistant = a.assistant_id;
      await refreshThreads();
      location.hash = `#/threads/${encodeURIComponent(t.thread_id)}`;
    } catch (err) {
      toast(`Could not start: ${err.message}`, "error");
    }
  };
  return h("form", { class: "try-form", "aria-label": "Start a thread with a first run", on: { submit } },
    inputEl,
    cfgForm ? h("fieldset", { class: "fieldset" }, h("legend", { text: "Configurable" }), cfgForm.el) : null,
    h("div", { class: "row-end" }, h("button", { type: "submit", class: "btn btn-primary" }, h("span", { text: "Run in a new thread" }))));
}

const SCHEMA_TABS = [
  ["input_schema", "Input"],
  ["output_schema", "Output"],
  ["state_schema", "State"],
  ["config_schema", "Config"],
  ["context_schema", "Context"],
];

export function assistantView(main, assistantId) {
  let alive = true;
  const head = h("header", { class: "page-head" }, h("h1", { text: "Loading assistant…" }));
  const graphBox = h("div", { class: "graph-box", dataset: { testid: "graph" } }, h("p", { class: "muted", text: "Loading graph…" }));
  const xray = h("input", { type: "checkbox", id: "graph-xray" });
  const schemaBox = h("div", { class: "schema-box" }, h("p", { class: "muted", text: "Loading schemas…" }));
  const configBox = h("div", {});
  const tryBox = h("div", {}, h("p", { class: "muted", text: "Loading…" }));

  mount(main, h("div", { class: "page" }, head,
    h("div", { class: "split" },
      h("section", { class: "card", "aria-labelledby": "graph-h" },
        h("div", { class: "card-head" }, h("h2", { id: "graph-h", text: "Graph" }),
          h("div", { class: "field-check" }, xray, h("label", { for: "graph-xray", text: "Show subgraphs" }))),
        graphBox),
      h("div", { class: "stack" },
        h("section", { class: "card", "aria-labelledby": "try-h" }, h("div", { class: "card-head" }, h("h2", { id: "try-h", text: "Try it" })), tryBox),
        h("section", { class: "card", "aria-labelledby": "schema-h" }, h("div", { class: "card-head" }, h("h2", { id: "schema-h", text: "Schemas" })), schemaBox),
        h("section", { class: "card", "aria-labelledby": "config-h" }, h("div", { class: "card-head" }, h("h2", { id: "config-h", text: "Configuration" })), configBox)))));

  const loadGraph = async () => {
    try {
      const graph = await api.getGraph(assistantId, xray.checked);
      if (!alive) return;
      const a = store.assistant(assistantId);
      mount(graphBox, renderGraph(graph, { title: `Graph of ${a ? a.graph_id : assistantId}` }));
    } catch (err) {
      if (alive) mount(graphBox, h("p", { class: "error-text", text: `Could not draw the graph: ${err.message}` }));
    }
  };
  xray.addEventListener("change", loadGraph);

  (async () => {
    let a;
    try {
      a = await api.getAssistant(assistantId);
    } catch (err) {
      mount(head, h("h1", { text: "Assistant not found" }), h("p", { class: "error-text", text: err.message }));
      return;
    }
    if (!alive) return;
    mount(head,
      h("div", {},
        h("p", { class: "eyebrow", text: "Assistant" }),
        h("h1", {}, a.name || a.graph_id),
        h("p", { class: "muted meta-line" },
          h("span", {}, "graph ", h("code", { text: a.graph_id })),
          h("span", { text: `version ${a.version}` }),
          h("span", { class: "mono", title: a.assistant_id, text: shortId(a.assistant_id) }),
          h("span", { text: `updated ${fmtTime(a.updated_at)}` })),
        a.description ? h("p", { text: a.description }) : null),
      h("div", { class: "head-actions" },
        button("Copy id", { icon: "copy", onClick: () => navigator.clipboard && navigator.clipboard.writeText(a.assistant_id).then(() => toast("Assistant id copied", "success"), () => {}) }),
        button("New thread", { icon: "plus", cls: "btn-primary", onClick: () => newThread(a.assistant_id) })));
    mount(configBox,
      h("h3", { class: "sub", text: "config" }), jsonTree(a.config || {}, { expandDepth: 2, label: "Assistant config" }),
      h("h3", { class: "sub", text: "context" }), jsonTree(a.context || {}, { expandDepth: 2, label: "Assistant context" }),
      h("h3", { class: "sub", text: "metadata" }), jsonTree(a.metadata || {}, { expandDepth: 2, label: "Assistant metadata" }));
    loadGraph();
    try {
      const schemas = await api.getSchemas(assistantId);
      if (!alive) return;
      mount(schemaBox, tabs("schema-tabs", "Schemas", SCHEMA_TABS.map(([key, label]) => ({
        id: key, label, render: () => schemaView(schemas[key], label),
      }))));
      mount(tryBox, tryItCard(a, schemas));
    } catch (err) {
      if (alive) mount(tryBox, tryItCard(a, {}));
      if (alive) mount(schemaBox, h("p", { class: "error-text", text: `Could not load schemas: ${err.message}` }));
    }
  })();

  return { destroy: () => { alive = false; } };
}

