// Thread screen: conversation + composer on the left, inspector tabs on the
// right (live trace, state, history, runs, graph). Runs are streamed with
// POST /threads/{id}/runs/stream and re-joined after a reload with
// GET /threads/{id}/runs/{run_id}/stream + Last-Event-ID.

import { api } from "./api.js";
import { h, mount, append, icon, button, badge, shortId, relTime, fmtTime, fmtDuration, toast, parseJson, pretty } from "./dom.js";
import { jsonTree } from "./jsontree.js";
import { markdownElement } from "./markdown.js";
import { messageElement, messageKey } from "./messages.js";
import { renderGraph } from "./graph.js";
import { isChatSchema, skeleton, typeLabel } from "./schema.js";
import { tabs } from "./tabs.js";
import { newRun, applyEvent, finishRun, saveRun, loadRun, AUTOSTART_PREFIX } from "./runstate.js";
import { store, refreshThreads, deleteThread, confirmButton } from "./app.js";

const STREAM_MODES = ["messages-tuple", "updates", "values", "tasks", "custom"];
const ACTIVE = new Set(["pending", "running"]);
const STRATEGIES = [
  ["enqueue", "Enqueue — run after the current one"],
  ["reject", "Reject — refuse while busy"],
  ["interrupt", "Interrupt — stop the current run, keep its progress"],
  ["rollback", "Rollback — stop and discard the current run"],
];

export function threadView(main, threadId) {
  const view = new ThreadView(main, threadId);
  view.init();
  return view;
}

function numericId(id) {
  return id !== null && id !== undefined && /^\d+$/.test(String(id)) ? Number(id) : null;
}

/** Keep `parent`'s children equal to `nodes`, moving only what changed. */
function reconcile(parent, nodes) {
  nodes.forEach((node, i) => {
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
  });
  while (parent.children.length > nodes.length) parent.lastElementChild.remove();
}

function statusIcon(status) {
  if (status === "running") return h("span", { class: "spinner", "aria-hidden": "true" });
  const name = { done: "check", success: "check", error: "alert", interrupted: "pause", cancelled: "stop" }[status] || "chevron";
  return icon(name, 14);
}

class ThreadView {
  constructor(main, threadId) {
    this.main = main;
    this.threadId = threadId;
    this.alive = true;
    this.thread = null;
    this.state = null;
    this.history = null;
    this.runs = [];
    this.schemas = null;
    this.graph = null;
    this.assistantId = null;
    this.live = null; // the run being streamed (runstate object)
    this.liveCtl = null;
    this.lastRun = null; // the most recent finished run of this session
    this.earlier = []; // older finished runs, newest first
    this.forkFrom = null;
    this.selectedCheckpoint = null;
    this.mode = null; // "chat" | "json"
    this.msgCache = new Map();
    this.traceCache = new Map();
    this.frame = 0;
    this.dirty = new Set();
    this.timers = [];
    this.counters = { started: 0, settled: 0 }; // exposed as data attributes for scripts and tests
    this.onPageHide = () => this.persist(true);
    window.addEventListener("pagehide", this.onPageHide);
  }

  get streaming() {
    return Boolean(this.live && this.liveCtl);
  }

  destroy() {
    this.alive = false;
    this.persist(true);
    if (this.liveCtl) this.liveCtl.abort();
    window.removeEventListener("pagehide", this.onPageHide);
    cancelAnimationFrame(this.frame);
    this.timers.forEach(clearInterval);
  }

  syncCounters() {
    if (!this.page) return;
    this.page.dataset.runsStarted = String(this.counters.started);
    this.page.dataset.runsSettled = String(this.counters.settled);
  }

  // ------------------------------------------------------------ layout

  build() {
    this.statusEl = h("span", { class: "thread-status", dataset: { testid: "thread-status" } });
    this.assistantSelect = h("select", { id: "thread-assistant" });
    this.assistantSelect.addEventListener("change", () => this.setAssistant(this.assistantSelect.value));
    this.metaEl = h("div", { class: "chips" });
    const head = h("header", { class: "thread-head" },
      h("div", { class: "thread-title" },
        h("p", { class: "eyebrow", text: "Thread" }),
        h("h1", { class: "mono", title: this.threadId }, shortId(this.threadId)),
        this.statusEl, this.metaEl),
      h("div", { class: "head-actions" },
        h("div", { class: "field inline" }, h("label", { for: "thread-assistant", text: "Assistant" }), this.assistantSelect),
        button("Refresh", { icon: "refresh", hideLabel: true, onClick: () => this.refreshAll() }),
        confirmButton("Delete thread", "Confirm delete", () => deleteThread(this.threadId), { hideLabel: true })));

    this.transcript = h("div", { class: "transcript-inner" });
    this.scroller = h("div", { class: "transcript", role: "log", "aria-label": "Conversation", "aria-live": "polite", tabindex: "0" }, this.transcript);
    this.composer = this.buildComposer();
    this.setMode("chat", false);

    this.traceEl = h("div", { class: "trace" });
    this.stateEl = h("div", { class: "state-panel" });
    this.historyEl = h("div", { class: "history-panel" });
    this.runsEl = h("div", { class: "runs-panel" });
    this.graphEl = h("div", { class: "graph-panel graph-box" });
    this.tabs = tabs("inspector", "Inspector", [
      { id: "trace", label: "Trace", render: () => this.traceEl },
      { id: "state", label: "State", render: () => this.stateEl },
      { id: "history", label: "History", render: () => this.historyEl },
      { id: "runs", label: "Runs", render: () => this.runsEl },
      { id: "graph", label: "Graph", render: () => this.graphEl },
    ], {
      onChange: (id) => {
        if (id === "history") this.loadHistory();
        if (id === "runs") this.loadRuns();
        if (id === "state") this.renderState();
      },
    });

    this.page = h("div", { class: "thread-page", dataset: { threadId: this.threadId } }, head,
      h("div", { class: "workspace" },
        h("section", { class: "conversation", "aria-label": "Conversation and input" }, this.scroller, this.composer),
        h("aside", { class: "inspector", "aria-label": "Run inspector" }, this.tabs)));
    this.syncCounters();
    mount(this.main, this.page);
  }

  buildComposer() {
    this.forkBanner = h("div", { class: "fork-banner", hidden: true, role: "status" });
    this.modeChat = h("input", { type: "radio", name: "composer-mode", id: "mode-chat", value: "chat" });
    this.modeJson = h("input", { type: "radio", name: "composer-mode", id: "mode-json", value: "json" });
    for (const r of [this.modeChat, this.modeJson]) r.addEventListener("change", () => this.setMode(r.value, true));
    this.chatInput = h("textarea", {
      id: "composer-message", rows: 2, class: "composer-text", placeholder: "Send a message…  (Enter to send, Shift+Enter for a new line)",
    });
    this.chatInput.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.composer.requestSubmit();
      }
    });
    this.jsonInput = h("textarea", { id: "composer-json", rows: 4, class: "composer-text mono", spellcheck: "false", placeholder: '{"key": "value"}' });
    this.jsonInput.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        this.composer.requestSubmit();
      }
    });
    this.chatField = h("div", { class: "field composer-field" }, h("label", { for: "composer-message", class: "sr-only", text: "Your message" }), this.chatInput);
    this.jsonHint = h("p", { class: "hint", id: "composer-json-hint", text: "Ctrl+Enter to run. Leave empty to run with no input." });
    this.jsonInput.setAttribute("aria-describedby", "composer-json-hint");
    this.jsonField = h("div", { class: "field composer-field" }, h("label", { for: "composer-json", text: "Input (JSON)" }), this.jsonInput, this.jsonHint);

    this.configInput = h("textarea", { id: "run-config", rows: 2, class: "mono", spellcheck: "false", placeholder: '{"configurable": {}}' });
    this.subgraphsInput = h("input", { type: "checkbox", id: "run-subgraphs" });
    this.beforeInput = h("input", { type: "text", id: "run-interrupt-before", placeholder: "node, node or *" });
    this.afterInput = h("input", { type: "text", id: "run-interrupt-after", placeholder: "node, node or *" });
    const optionsToggle = h("button", {
      type: "button", class: "btn btn-ghost btn-small options-toggle", "aria-expanded": "false", "aria-controls": "run-options",
    }, icon("chevron", 14), h("span", { text: "Run options" }));
    const options = h("div", { id: "run-options", class: "run-options", hidden: true },
      h("div", { class: "options-grid" },
        h("div", { class: "field opt-config" }, h("label", { for: "run-config", text: "Config (JSON)" }), this.configInput),
        h("div", { class: "field" }, h("label", { for: "run-interrupt-before", text: "Interrupt before" }), this.beforeInput),
        h("div", { class: "field" }, h("label", { for: "run-interrupt-after", text: "Interrupt after" }), this.afterInput),
        h("div", { class: "field-check opt-check" }, this.subgraphsInput, h("label", { for: "run-subgraphs", text: "Stream subgraph events" }))));
    optionsToggle.addEventListener("click", () => {
      const open = options.hidden;
      options.hidden = !open;
      optionsToggle.setAttribute("aria-expanded", String(open));
      if (open) this.configInput.focus();
    });

    this.strategySelect = h("select", { id: "multitask-strategy" }, STRATEGIES.map(([v, label]) => h("option", { value: v, text: label })));
    this.strategyField = h("div", { class: "field inline busy-strategy", hidden: true },
      h("label", { for: "multitask-strategy", text: "Thread is busy:" }), this.strategySelect);
    this.stopBtn = button("Cancel run", { icon: "stop", cls: "btn-danger-ghost", onClick: () => this.cancelLive() });
    this.stopBtn.hidden = true;
    this.sendBtn = h("button", { type: "submit", class: "btn btn-primary", disabled: true, dataset: { testid: "send" } }, icon("send"), h("span", { text: "Send" }));

    const form = h("form", { class: "composer", "aria-label": "Run input", dataset: { ready: "false" } },
      this.forkBanner,
      h("div", { class: "composer-top" },
        h("div", { class: "segmented", role: "radiogroup", "aria-label": "Input type" },
          this.modeChat, h("label", { for: "mode-chat", text: "Message" }),
          this.modeJson, h("label", { for: "mode-json", text: "JSON input" })),
        this.strategyField),
      this.chatField, this.jsonField,
      h("div", { class: "composer-bar" }, optionsToggle, h("div", { class: "composer-actions" }, this.stopBtn, this.sendBtn)),
      options);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.send();
    });
    return form;
  }

  // ------------------------------------------------------------ data

  async init() {
    this.build();
    mount(this.transcript, h("p", { class: "empty", text: "Loading thread…" }));
    try {
      if (!(await this.fetchThread())) return;
    } catch (err) {
      if (!this.alive) return;
      mount(this.main, h("div", { class: "page" }, h("h1", { text: "Thread not found" }),
        h("p", { class: "error-text", text: err.message }), h("p", {}, h("a", { href: "#/threads", text: "Back to threads" }))));
      return;
    }
    const meta = this.thread.metadata || {};
    const runAssistant = this.runs[0] && this.runs[0].assistant_id;
    const pick = [meta.assistant_id, runAssistant, meta.graph_id, store.selectedAssistant].find((id) => id && store.assistant(id));
    this.fillAssistants(pick ? store.assistant(pick).assistant_id : store.assistants[0] && store.assistants[0].assistant_id);
    await this.setAssistant(this.assistantSelect.value, false);
    this.restoreSession();
    this.ready = true;
    this.composer.dataset.ready = "true";
    this.sendBtn.disabled = false;
    this.renderAll();
    this.autostart();
    this.timers.push(setInterval(() => this.tick(), 250));
    this.timers.push(setInterval(() => this.poll(), 1500));
  }

  /** Start the run the assistant screen's "Try it" form left for this thread. */
  autostart() {
    let pending = null;
    try {
      pending = JSON.parse(sessionStorage.getItem(AUTOSTART_PREFIX + this.threadId) || "null");
      sessionStorage.removeItem(AUTOSTART_PREFIX + this.threadId);
    } catch {
      pending = null;
    }
    if (!pending || this.streaming) return;
    let body;
    try {
      body = this.runBody({ input: pending.input });
    } catch (err) {
      toast(err.message, "error");
      return;
    }
    if (pending.config) body.config = pending.config;
    this.startStream(body, { label: "run" });
  }

  fillAssistants(selected) {
    mount(this.assistantSelect, store.assistants.map((a) => h("option", {
      value: a.assistant_id, selected: a.assistant_id === selected,
      text: a.name && a.name !== a.graph_id ? `${a.name} (${a.graph_id})` : a.graph_id,
    })));
    if (selected) this.assistantSelect.value = selected;
  }

  async setAssistant(id, render = true) {
    this.assistantId = id;
    if (id) store.selectedAssistant = id;
    this.schemas = null;
    this.graph = null;
    try {
      const [schemas, graph] = await Promise.all([api.getSchemas(id), api.getGraph(id)]);
      if (!this.alive || this.assistantId !== id) return;
      this.schemas = schemas;
      this.graph = graph;
      this.graphSvg = null;
    } catch (err) {
      toast(`Could not load the assistant: ${err.message}`, "error");
    }
    this.chooseMode();
    if (render) this.renderAll();
  }

  chooseMode() {
    const values = (this.state && this.state.values) || {};
    const chat = isChatSchema(this.schemas && this.schemas.input_schema) || Array.isArray(values.messages);
    this.setMode(chat ? "chat" : "json", false);
    const schema = this.schemas && this.schemas.input_schema;
    const fields = schema && schema.properties && !isChatSchema(schema) ? Object.keys(schema.properties) : [];
    this.jsonHint.textContent = fields.length
      ? `Input fields: ${fields.map((f) => `${f} (${typeLabel(schema.properties[f], schema)})`).join(", ")}. Ctrl+Enter to run.`
      : "Ctrl+Enter to run. Leave empty to run with no input.";
    if (!this.jsonInput.value.trim()) {
      const last = this.runs.find((r) => r.kwargs && r.kwargs.input && typeof r.kwargs.input === "object");
      let seed = null;
      if (fields.length) {
        const required = new Set(schema.required || []);
        seed = Object.fromEntries(Object.entries(skeleton(schema)).filter(([k]) => required.has(k)));
      } else if (last && !chat) seed = last.kwargs.input;
      this.jsonInput.value = seed && Object.keys(seed).length ? pretty(seed) : "";
    }
  }

  setMode(mode, focus) {
    this.mode = mode;
    this.modeChat.checked = mode === "chat";
    this.modeJson.checked = mode === "json";
    this.chatField.hidden = mode !== "chat";
    this.jsonField.hidden = mode !== "json";
    if (focus) (mode === "chat" ? this.chatInput : this.jsonInput).focus();
  }

  /** Read the thread, its state and its runs together; false when the view closed meanwhile. */
  async fetchThread() {
    const [thread, state, runs] = await Promise.all([
      api.getThread(this.threadId), api.getState(this.threadId), api.listRuns(this.threadId),
    ]);
    if (!this.alive) return false;
    this.thread = thread;
    this.state = state;
    this.runs = runs || [];
    return true;
  }

  async refreshAll() {
    try {
      if (!(await this.fetchThread())) return;
      this.settlingValues = null;
      if (this.history !== null || this.tabs.selected() === "history") await this.loadHistory(false);
    } catch (err) {
      if (this.alive && err.status !== 404) toast(`Refresh failed: ${err.message}`, "error");
    }
    this.renderAll();
  }

  async loadHistory(render = true) {
    try {
      const history = await api.history(this.threadId, { limit: 50 });
      if (!this.alive) return;
      this.history = history || [];
    } catch (err) {
      this.history = [];
      toast(`Could not load history: ${err.message}`, "error");
    }
    if (render) this.renderHistory();
  }

  async loadRuns() {
    try {
      const runs = await api.listRuns(this.threadId);
      if (!this.alive) return;
      this.runs = runs || [];
    } catch {
      /* keep the previous list */
    }
    this.renderRuns();
  }

  /** Keep the runs list and the thread status fresh while something is active. */
  async poll() {
    if (!this.alive || document.hidden) return;
    const active = this.runs.some((r) => ACTIVE.has(r.status)) || (this.thread && this.thread.status === "busy");
    if (!active && !this.streaming) return;
    try {
      const [thread, runs] = await Promise.all([api.getThread(this.threadId), api.listRuns(this.threadId)]);
      if (!this.alive) return;
      const wasBusy = this.thread && this.thread.status === "busy";
      this.thread = thread;
      this.runs = runs || [];
      this.renderHeader();
      this.renderRuns();
      this.renderComposerState();
      if (wasBusy && thread.status !== "busy" && !this.streaming) this.refreshAll();
    } catch {
      /* transient */
    }
  }

  // ------------------------------------------------------------ runs

  runBody(extra) {
    const body = {
      assistant_id: this.assistantId, stream_mode: STREAM_MODES, stream_resumable: true, on_disconnect: "continue", ...extra,
    };
    const config = parseJson(this.configInput.value, undefined);
    if (!config.ok) throw new Error(`Config is not valid JSON: ${config.error}`);
    if (config.value !== undefined) body.config = config.value;
    if (this.subgraphsInput.checked) body.stream_subgraphs = true;
    const list = (v) => {
      const t = v.trim();
      if (!t) return undefined;
      return t === "*" ? "*" : t.split(",").map((s) => s.trim()).filter(Boolean);
    };
    const before = list(this.beforeInput.value);
    const after = list(this.afterInput.value);
    if (before) body.interrupt_before = before;
    if (after) body.interrupt_after = after;
    if (this.isBusy()) body.multitask_strategy = this.strategySelect.value;
    return body;
  }

  isBusy() {
    return this.streaming || (this.thread && this.thread.status === "busy") || this.runs.some((r) => ACTIVE.has(r.status));
  }

  async send() {
    if (!this.ready) return;
    if (!this.assistantId) {
      toast("Pick an assistant first", "error");
      return;
    }
    let input;
    if (this.mode === "chat") {
      const text = this.chatInput.value.trim();
      if (!text) {
        this.chatInput.focus();
        return;
      }
      input = { messages: [{ role: "user", content: text }] };
    } else {
      const parsed = parseJson(this.jsonInput.value, null);
      if (!parsed.ok) {
        toast(`Input is not valid JSON: ${parsed.error}`, "error");
        this.jsonInput.focus();
        return;
      }
      input = parsed.value;
    }
    let body;
    try {
      body = this.runBody({ input });
    } catch (err) {
      toast(err.message, "error");
      return;
    }
    if (this.forkFrom) body.checkpoint_id = this.forkFrom.checkpoint_id;
    const ok = await this.startStream(body, { label: this.forkFrom ? "fork" : "run" });
    if (ok) {
      if (this.mode === "chat") this.chatInput.value = "";
      this.setFork(null);
    }
  }

  async resume(value, label = "resume") {
    let body;
    try {
      body = this.runBody({ command: { resume: value } });
    } catch (err) {
      toast(err.message, "error");
      return false;
    }
    delete body.multitask_strategy;
    return this.startStream(body, { label });
  }

  /** Start a streamed run. Resolves true once the server accepted it. */
  startStream(body, { label }) {
    const run = newRun({ label, input: body.input, command: body.command, checkpointId: body.checkpoint_id || null });
    if (body.input && body.input.messages) {
      // Show the user's message at once; the first `values` event replaces it.
      run.pending = body.input.messages.map((m, i) => ({ type: "human", content: m.content, id: `pending-${i}` }));
    }
    return this.attach(run, (signal, handlers) => api.streamRun(this.threadId, body, { signal, ...handlers }));
  }

  joinStream(run, lastEventId) {
    return this.attach(run, (signal, handlers) => api.joinRun(this.threadId, run.runId, lastEventId, { signal, ...handlers }));
  }

  attach(run, open) {
    return new Promise((resolve) => {
      const ctl = new AbortController();
      let accepted = false;
      const previous = this.liveCtl;
      const onOpen = (res) => {
        accepted = true;
        const loc = res.headers.get("content-location") || "";
        const m = loc.match(/\/runs\/([^/]+)$/);
        if (m && !run.runId) run.runId = m[1];
        if (previous && previous !== ctl) {
          // Detach from the older stream; on_disconnect=continue keeps that run going.
          previous.abort();
          if (this.live && this.live !== run) this.archive(this.live, "detached");
        }
        this.live = run;
        this.liveCtl = ctl;
        if (!run.counted) {
          run.counted = true;
          this.counters.started += 1;
          this.syncCounters();
        }
        if (run.status === "starting") run.status = "running";
        this.persist(true);
        if (["state", "history"].includes(this.tabs.selected())) this.tabs.select("trace");
        this.renderAll();
        resolve(true);
        refreshThreads();
      };
      const onEvent = (ev) => {
        if (ctl.signal.aborted) return;
        const n = numericId(ev.id);
        const last = numericId(run.lastEventId);
        if (n !== null && last !== null && n <= last) return; // replayed twice after a reconnect
        const hint = applyEvent(run, ev);
        if (hint === "meta") {
          this.persist(true);
          this.loadRuns();
        } else this.persist(false);
        this.schedule(hint === "messages" ? ["transcript"] : ["transcript", "trace", "graph"]);
      };
      (async () => {
        let failed = null;
        try {
          await open(ctl.signal, { onEvent, onOpen });
        } catch (err) {
          failed = err;
        }
        // Aborted on purpose (page left, or a newer stream took over): nothing to settle here.
        if (ctl.signal.aborted) return;
        if (!accepted) {
          resolve(false);
          const joining = Boolean(run.runId);
          const busy = failed && failed.status === 409;
          toast(busy ? "The thread is busy and the run was rejected (multitask strategy: reject)."
            : `${joining ? "Could not re-join the run" : "Run failed to start"}: ${failed ? failed.message : "no response"}`, "error", 8000);
          if (this.live === run) {
            // A re-join that failed: settle what we have and show the thread as the server has it.
            finishRun(run, "detached");
            this.live = null;
            this.archive(run);
            this.refreshAll();
          }
          return;
        }
        if (failed && !run.error) run.error = { error: "StreamError", message: failed.message, node: null };
        await this.settle(run, ctl);
      })();
    });
  }

  async settle(run, ctl) {
    if (this.liveCtl === ctl) this.liveCtl = null;
    let runs = null;
    try {
      runs = await api.listRuns(this.threadId);
    } catch {
      /* fall back to what the stream said */
    }
    const record = runs && run.runId ? runs.find((r) => r.run_id === run.runId) : null;
    let status;
    if (record && record.status === "interrupted") status = "cancelled";
    else if (record && (record.status === "error" || record.status === "timeout")) status = "error";
    if (record && record.status === "error" && !run.error) run.error = { error: "Error", message: "The run failed.", node: null };
    if (record && ACTIVE.has(record.status) && this.alive && this.live === run && (run.rejoins || 0) < 5) {
      // The stream closed while the run goes on (network, proxy): re-join after the last event we saw.
      run.rejoins = (run.rejoins || 0) + 1;
      if (run.error && run.error.error === "StreamError") run.error = null;
      await new Promise((r) => setTimeout(r, 300 * run.rejoins));
      if (this.alive && this.live === run) {
        this.joinStream(run, run.lastEventId);
        return;
      }
    }
    finishRun(run, status);
    this.settlingValues = run.values;
    if (this.live === run) {
      this.live = null;
      this.archive(run);
    }
    this.persist(true, run);
    if (!this.alive) return;
    if (runs) this.runs = runs;
    await this.refreshAll();
    this.settlingValues = null;
    this.counters.settled += 1;
    this.syncCounters();
    refreshThreads();
    if (run.status === "error") this.tabs.select("trace");
  }

  archive(run, status) {
    if (status) {
      run.status = status;
      run.endedAt = Date.now();
    }
    if (this.lastRun && this.lastRun !== run) this.earlier.unshift(this.lastRun);
    this.earlier = this.earlier.slice(0, 5);
    this.lastRun = run;
  }

  async cancelLive() {
    const run = this.live;
    const target = run && run.runId ? run.runId : (this.runs.find((r) => ACTIVE.has(r.status)) || {}).run_id;
    if (!target) return;
    await this.cancelRun(target);
  }

  async cancelRun(runId) {
    try {
      await api.cancelRun(this.threadId, runId, "interrupt");
      toast(`Cancelling run ${shortId(runId)}…`, "info", 2500);
    } catch (err) {
      toast(`Cancel failed: ${err.message}`, "error");
    }
    await this.loadRuns();
  }

  persist(now, run = this.live || this.lastRun) {
    if (!run) return;
    const write = () => {
      this.persistTimer = null;
      const snapshot = { ...run, active: run === this.live && Boolean(this.liveCtl) };
      saveRun(this.threadId, { current: snapshot, earlier: this.earlier.slice(0, 3) });
    };
    if (now) {
      clearTimeout(this.persistTimer);
      write();
    } else if (!this.persistTimer) this.persistTimer = setTimeout(write, 300);
  }

  restoreSession() {
    const saved = loadRun(this.threadId);
    const current = saved && saved.current;
    this.earlier = (saved && saved.earlier) || [];
    if (current && current.active && current.runId) {
      const record = this.runs.find((r) => r.run_id === current.runId);
      if (record && ACTIVE.has(record.status)) {
        current.reconnected = (current.reconnected || 0) + 1;
        this.joinStream(current, current.lastEventId);
        return;
      }
      finishRun(current, record && record.status === "interrupted" ? "cancelled" : record && record.status === "error" ? "error" : undefined);
    }
    if (current) this.lastRun = current;
    const active = this.runs.find((r) => ACTIVE.has(r.status));
    if (active && !(this.live && this.live.runId === active.run_id)) {
      // A run we did not start here (or before we saved its id): follow it from now on.
      this.joinStream(newRun({ runId: active.run_id, label: "joined", status: "running" }), null);
    }
  }

  // ------------------------------------------------------------ HITL

  pendingInterrupts() {
    if (this.streaming || !this.state) return [];
    const list = [];
    const seen = new Set();
    for (const task of this.state.tasks || []) {
      for (const intr of task.interrupts || []) {
        if (seen.has(intr.id)) continue;
        seen.add(intr.id);
        list.push({ ...intr, node: task.name });
      }
    }
    for (const intr of this.state.interrupts || []) {
      if (!seen.has(intr.id)) list.push({ ...intr, node: null });
    }
    return list;
  }

  interruptCard(intr, index, total) {
    const value = intr.value;
    const resumeWith = (v, label) => this.resume(total > 1 ? { [intr.id]: v } : v, label);
    const fields = h("div", { class: "interrupt-fields" });
    let question = null;
    if (value && typeof value === "object" && !Array.isArray(value)) {
      const { question: q, ...rest } = value;
      if (typeof q === "string") question = q;
      for (const [k, v] of Object.entries(rest)) {
        append(fields, h("div", { class: "kv" }, h("div", { class: "kv-key", text: k }),
          h("div", { class: "kv-val" }, typeof v === "string" ? markdownElement(v) : jsonTree(v, { expandDepth: 2 }))));
      }
    } else if (typeof value === "string") question = value;
    else append(fields, jsonTree(value, { expandDepth: 2, label: "Interrupt payload" }));

    const headingId = `intr-${index}-h`;
    const approvedBox = h("input", { type: "checkbox", id: `intr-${index}-approved`, checked: true });
    const feedback = h("textarea", { id: `intr-${index}-feedback`, rows: 2, placeholder: "Feedback for the graph (optional)" });
    const editPanel = h("form", { class: "interrupt-panel", hidden: true, "aria-label": "Edit response" },
      h("div", { class: "field-check" }, approvedBox, h("label", { for: approvedBox.id, text: "Approved" })),
      h("div", { class: "field" }, h("label", { for: feedback.id, text: "Feedback" }), feedback),
      h("div", { class: "row-end" }, h("button", { type: "submit", class: "btn btn-primary" }, icon("send"), h("span", { text: "Send response" }))));
    editPanel.addEventListener("submit", (ev) => {
      ev.preventDefault();
      resumeWith({ approved: approvedBox.checked, feedback: feedback.value }, "edit");
    });
    const jsonText = h("textarea", { id: `intr-${index}-json`, rows: 4, class: "mono", spellcheck: "false", value: pretty(value) });
    const jsonPanel = h("form", { class: "interrupt-panel", hidden: true, "aria-label": "Respond with JSON" },
      h("div", { class: "field" }, h("label", { for: jsonText.id, text: "Resume value (any JSON)" }), jsonText),
      h("div", { class: "row-end" }, h("button", { type: "submit", class: "btn btn-primary" }, icon("send"), h("span", { text: "Resume with JSON" }))));
    jsonPanel.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const parsed = parseJson(jsonText.value, null);
      if (!parsed.ok) {
        toast(`Not valid JSON: ${parsed.error}`, "error");
        jsonText.focus();
        return;
      }
      resumeWith(parsed.value, "json");
    });
    const toggle = (panel, other, focusEl) => () => {
      other.hidden = true;
      panel.hidden = !panel.hidden;
      if (!panel.hidden) focusEl.focus();
    };
    return h("section", { class: "interrupt-card", "aria-labelledby": headingId, dataset: { testid: "interrupt", interruptId: intr.id } },
      h("div", { class: "interrupt-head" }, icon("pause", 16),
        h("span", { id: headingId, text: `Waiting for human input${intr.node ? ` at “${intr.node}”` : ""}` }),
        total > 1 ? h("span", { class: "muted small", text: `${index + 1} of ${total}` }) : null),
      question ? h("p", { class: "interrupt-question", text: question }) : null,
      fields,
      h("div", { class: "interrupt-actions" },
        button("Approve", { icon: "check", cls: "btn-success", onClick: () => resumeWith("yes", "approve") }),
        button("Reject", { icon: "x", cls: "btn-danger", onClick: () => resumeWith("no", "reject") }),
        button("Edit…", { icon: "edit", onClick: toggle(editPanel, jsonPanel, feedback) }),
        button("JSON…", { onClick: toggle(jsonPanel, editPanel, jsonText) })),
      editPanel, jsonPanel);
  }

  // ------------------------------------------------------------ rendering

  schedule(parts) {
    for (const p of parts) this.dirty.add(p);
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      const parts = new Set(this.dirty);
      this.dirty.clear();
      if (!this.alive) return;
      if (parts.has("transcript")) this.renderTranscript();
      if (parts.has("trace")) this.renderTrace();
      if (parts.has("graph")) this.renderGraphPanel();
    });
  }

  tick() {
    if (!this.alive) return;
    if (this.live && this.live.entries.some((e) => e.status === "running")) this.renderTrace();
  }

  renderAll() {
    if (!this.alive || !this.thread) return;
    this.renderHeader();
    this.renderTranscript();
    this.renderComposerState();
    this.renderTrace();
    this.renderState();
    this.renderHistory();
    this.renderRuns();
    this.renderGraphPanel();
  }

  renderHeader() {
    const status = this.streaming ? "busy" : this.thread.status;
    mount(this.statusEl, badge(status));
    this.statusEl.dataset.status = status;
    const meta = Object.entries(this.thread.metadata || {}).filter(([k]) => k !== "assistant_id");
    mount(this.metaEl, meta.map(([k, v]) => h("span", { class: "chip", text: `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}` })));
  }

  renderComposerState() {
    const busy = this.isBusy();
    this.strategyField.hidden = !busy;
    this.stopBtn.hidden = !busy;
    this.sendBtn.querySelector("span").textContent = this.forkFrom ? "Fork run" : busy ? "Send anyway" : "Send";
  }

  currentValues() {
    if (this.live && this.live.values) return this.live.values;
    if (this.settlingValues) return this.settlingValues;
    return (this.state && this.state.values) || {};
  }

  renderTranscript() {
    if (!this.thread) return;
    const nearBottom = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 80;
    const values = this.currentValues();
    const live = this.live;
    const nodes = [];
    const used = new Set();
    const msgNode = (msg, streaming, key) => {
      const sig = messageKey(msg, streaming);
      const cached = this.msgCache.get(key);
      used.add(key);
      if (cached && cached.sig === sig) return cached.el;
      const el = messageElement(msg, { streaming });
      this.msgCache.set(key, { sig, el });
      return el;
    };
    const messages = Array.isArray(values.messages) ? values.messages : null;
    if (messages) {
      const ids = new Set();
      messages.forEach((m, i) => {
        ids.add(m.id);
        nodes.push(msgNode(m, false, `v:${m.id || i}`));
      });
      if (live && live.pending && !live.values) live.pending.forEach((m) => nodes.push(msgNode(m, false, `p:${m.id}`)));
      if (live) {
        for (const b of live.buffers) {
          if (ids.has(b.id)) continue;
          nodes.push(msgNode(b.message, this.streaming && live === this.live, `b:${b.id}`));
        }
      }
    } else {
      if (live && live.pending && !live.values) live.pending.forEach((m) => nodes.push(msgNode(m, false, `p:${m.id}`)));
      if (live) for (const b of live.buffers) nodes.push(msgNode(b.message, this.streaming, `b:${b.id}`));
      const hasValues = values && Object.keys(values).length;
      if (hasValues) {
        const sig = `${this.streaming ? 1 : 0}|${JSON.stringify(values)}`;
        let card = this.valuesCard;
        if (!card || card.sig !== sig) {
          card = h("section", { class: "values-card", "aria-label": "Current values", dataset: { testid: "values-card" } },
            h("div", { class: "card-head" }, h("h2", { class: "small-title", text: this.streaming ? "Values (live)" : "Values" })),
            jsonTree(values, { expandDepth: 2, label: "Thread values" }));
          card.sig = sig;
          this.valuesCard = card;
        }
        nodes.push(card);
      }
    }
    if (!nodes.length && !this.streaming) {
      const chat = this.mode === "chat";
      nodes.push(h("div", { class: "empty-state" },
        h("div", { class: "empty-icon", "aria-hidden": "true" }, icon(chat ? "chat" : "graph", 28)),
        h("p", { class: "empty-title", text: chat ? "Start the conversation" : "Run the graph" }),
        h("p", { class: "muted", text: chat ? "Type a message below. Tokens stream in live; the Trace tab shows each node as it runs." : "Enter the input as JSON below and press Send." })));
    }
    for (const key of this.msgCache.keys()) if (!used.has(key)) this.msgCache.delete(key);

    if (this.streaming && live) {
      const running = live.entries.filter((e) => e.status === "running").map((e) => e.name);
      nodes.push(h("div", { class: "run-indicator", role: "status", dataset: { testid: "run-indicator" } },
        h("span", { class: "spinner", "aria-hidden": "true" }),
        h("span", { text: running.length ? `Running ${running.join(", ")}…` : live.runId ? "Waiting for the graph…" : "Starting run…" })));
    }
    const err = (live && live.error) || (this.lastRun && this.lastRun.error && !this.streaming ? this.lastRun.error : null);
    if (err) {
      nodes.push(h("div", { class: "error-card", role: "alert", dataset: { testid: "run-error" } },
        icon("alert", 16),
        h("div", {}, h("strong", { text: err.error || "Error" }),
          err.node ? h("span", { class: "muted", text: ` in node “${err.node}”` }) : null,
          h("p", { class: "mono small", text: err.message || "" }))));
    } else if (!this.streaming && this.thread.status === "error" && this.thread.error) {
      nodes.push(h("div", { class: "error-card", role: "alert" }, icon("alert", 16),
        h("div", {}, h("strong", { text: "The last run failed" }), h("p", { class: "mono small", text: typeof this.thread.error === "string" ? this.thread.error : JSON.stringify(this.thread.error) }))));
    }
    if (this.lastRun && this.lastRun.status === "cancelled" && !this.streaming) {
      nodes.push(h("div", { class: "note-card", role: "status" }, icon("stop", 14), h("span", { text: `Run ${shortId(this.lastRun.runId)} was cancelled.` })));
    }
    const interrupts = this.pendingInterrupts();
    const intrSig = JSON.stringify(interrupts);
    if (interrupts.length) {
      if (this.intrSig !== intrSig) {
        this.intrNodes = interrupts.map((intr, i) => this.interruptCard(intr, i, interrupts.length));
        this.intrSig = intrSig;
      }
      nodes.push(...this.intrNodes);
    } else this.intrSig = null;
    this.scroller.setAttribute("aria-busy", String(this.streaming));
    reconcile(this.transcript, nodes);
    if (nearBottom || this.streaming) this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  traceItem(entry) {
    let cached = this.traceCache.get(entry);
    if (!cached) {
      const el = h("li", { class: "trace-item" });
      const iconBox = h("span", { class: "trace-icon" });
      const name = h("span", { class: "trace-name" }, entry.ns ? h("span", { class: "muted", text: `${entry.ns} › ` }) : null, entry.name);
      const meta = h("span", { class: "trace-meta" });
      const dur = h("span", { class: "trace-dur mono" });
      const detail = h("div", { class: "trace-detail" });
      append(el, h("div", { class: "trace-row" }, iconBox, name, meta, dur), detail);
      cached = { el, iconBox, meta, dur, detail, status: null, detailSig: null };
      this.traceCache.set(entry, cached);
    }
    const { el } = cached;
    el.dataset.node = entry.name;
    el.dataset.status = entry.status;
    if (cached.status !== entry.status) {
      mount(cached.iconBox, statusIcon(entry.status));
      cached.status = entry.status;
      el.className = `trace-item status-${entry.status}`;
      mount(cached.meta, entry.step !== null && entry.step !== undefined ? `step ${entry.step}` : "", " ", entry.status === "running" ? h("span", { class: "now", text: "running" }) : null);
    }
    const end = entry.end || (entry.status === "running" ? Date.now() : null);
    cached.dur.textContent = end ? fmtDuration(end - entry.start) : "";
    const custom = entry.custom || [];
    const sig = `${entry.update !== undefined}|${Boolean(entry.error)}|${entry.interrupts.length}|${custom.length}`;
    if (cached.detailSig !== sig) {
      cached.detailSig = sig;
      const parts = [];
      if (entry.error) parts.push(h("div", { class: "trace-error", role: "alert" }, h("strong", { text: entry.error.error || "Error" }), ": ", entry.error.message || ""));
      if (entry.interrupts.length) parts.push(h("div", { class: "trace-intr" }, icon("pause", 12), ` interrupt: `, h("code", { text: JSON.stringify(entry.interrupts[0].value).slice(0, 120) })));
      if (custom.length) {
        parts.push(h("details", { class: "trace-update" }, h("summary", { text: `custom events (${custom.length})` }),
          h("ol", { class: "custom-list" }, custom.map((c) => h("li", {}, h("code", { text: JSON.stringify(c) }))))));
      }
      if (entry.update !== undefined) {
        parts.push(h("details", { class: "trace-update" }, h("summary", { text: "update" }), jsonTree(entry.update, { expandDepth: 2, label: `Update from ${entry.name}` })));
      }
      mount(cached.detail, parts);
    }
    return el;
  }

  runSummary(run, { compact = false } = {}) {
    const total = (run.endedAt || Date.now()) - run.startedAt;
    const label = {
      starting: "Starting…", queued: "Queued", running: "Running", success: "Finished", error: "Failed",
      interrupted: "Waiting for human input", cancelled: "Cancelled", detached: "Detached",
    }[run.status] || run.status;
    return h("div", { class: ["trace-summary", compact && "compact"], dataset: { status: run.status } },
      statusIcon(run.status === "running" || run.status === "starting" ? "running" : run.status === "success" ? "done" : run.status),
      h("span", { class: "trace-summary-label", text: label }),
      run.label && run.label !== "run" ? h("span", { class: "chip", text: run.label }) : null,
      h("span", { class: "muted mono small", title: run.runId || "", text: run.runId ? shortId(run.runId) : "" }),
      h("span", { class: "muted small", text: fmtDuration(total) }),
      run.reconnected ? h("span", { class: "chip", title: "Re-joined with Last-Event-ID after a reload", text: "reconnected" }) : null);
  }

  renderTrace() {
    const run = this.live || this.lastRun;
    if (!run) {
      mount(this.traceEl, h("div", { class: "empty-panel" }, h("p", { text: "No run in this session yet." }),
        h("p", { class: "muted small", text: "Send input to watch each node start, stream and finish here, with its update and duration." })));
      this.tabs.setBadge("trace", null);
      return;
    }
    if (this.traceRun !== run) {
      this.traceRun = run;
      this.traceList = h("ol", { class: "trace-list", "aria-label": "Nodes of the run" });
      this.traceSummary = h("div", {});
      this.traceEarlier = h("div", {});
      mount(this.traceEl, this.traceSummary, this.traceList, this.traceEarlier);
    }
    mount(this.traceSummary, this.runSummary(run));
    reconcile(this.traceList, run.entries.map((e) => this.traceItem(e)));
    if (!run.entries.length) mount(this.traceList, h("li", { class: "muted small pad", text: this.streaming ? "Waiting for the first node…" : "No node events were recorded." }));
    const earlier = this.earlier.filter((r) => r !== run);
    if (earlier.length !== this.earlierCount) {
      this.earlierCount = earlier.length;
      mount(this.traceEarlier, earlier.length ? h("details", { class: "earlier-runs" },
        h("summary", { text: `Earlier runs in this session (${earlier.length})` }),
        earlier.map((r) => h("div", { class: "earlier-run" }, this.runSummary(r, { compact: true }),
          h("p", { class: "muted small mono", text: r.entries.map((e) => `${e.name}${e.end ? ` ${fmtDuration(e.end - e.start)}` : ""}`).join(" → ") })))) : null);
    }
    const running = run.entries.filter((e) => e.status === "running").length;
    this.tabs.setBadge("trace", this.streaming ? h("span", { class: "dot live", "aria-label": running ? "running" : "live" }) : null);
  }

  renderState() {
    if (!this.state || !this.alive) return;
    if (this.stateEditing) return;
    const st = this.state;
    const cp = st.checkpoint && st.checkpoint.checkpoint_id;
    const editBtn = button("Edit state", { icon: "edit", onClick: () => this.openStateEditor(this.stateEl, st, () => { this.stateEditing = false; this.renderState(); }) });
    editBtn.disabled = !cp;
    mount(this.stateEl,
      h("div", { class: "panel-toolbar" },
        h("h2", { class: "small-title", text: "Current state" }),
        h("div", { class: "row-end" }, button("Refresh", { icon: "refresh", onClick: () => this.refreshAll() }), editBtn)),
      h("dl", { class: "facts" },
        h("dt", { text: "Checkpoint" }), h("dd", { class: "mono", title: cp || "", text: cp ? shortId(cp) : "none yet" }),
        h("dt", { text: "Next" }), h("dd", {}, (st.next || []).length ? st.next.map((n) => h("code", { class: "chip", text: n })) : h("span", { class: "muted", text: "— (done)" })),
        h("dt", { text: "Step" }), h("dd", { text: st.metadata && st.metadata.step !== undefined ? String(st.metadata.step) : "—" }),
        h("dt", { text: "Saved" }), h("dd", { text: st.created_at ? fmtTime(st.created_at) : "—" })),
      h("h3", { class: "sub", text: "values" }),
      jsonTree(st.values || {}, { expandDepth: 1, label: "Current values" }),
      (st.tasks || []).length ? [h("h3", { class: "sub", text: "pending tasks" }), jsonTree(st.tasks, { expandDepth: 1, label: "Pending tasks" })] : null,
      h("details", { class: "raw-json" }, h("summary", { text: "Full ThreadState JSON" }), jsonTree(st, { expandDepth: 1, label: "Thread state" })));
  }

  /** Replace `host` with an editor for `snapshot.values`; saving posts a new checkpoint. */
  openStateEditor(host, snapshot, onClose) {
    const cp = snapshot.checkpoint && snapshot.checkpoint.checkpoint_id;
    if (host === this.stateEl) this.stateEditing = true;
    const text = h("textarea", { id: "state-editor", rows: 14, class: "mono", spellcheck: "false", value: pretty(snapshot.values || {}) });
    const asNode = h("input", { id: "state-as-node", type: "text", placeholder: "optional, e.g. agent" });
    const form = h("form", { class: "state-editor", "aria-label": "Edit state" },
      h("p", { class: "muted small" }, "Saving writes a new checkpoint on top of ", h("code", { text: shortId(cp) }),
        ". Values go through the graph's reducers (a message with an existing id replaces it)."),
      h("div", { class: "field" }, h("label", { for: "state-editor", text: "Values (JSON)" }), text),
      h("div", { class: "field" }, h("label", { for: "state-as-node", text: "As node" }), asNode),
      h("div", { class: "row-end" },
        button("Cancel", { onClick: () => onClose() }),
        h("button", { type: "submit", class: "btn btn-primary" }, icon("check"), h("span", { text: "Save state" }))));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const parsed = parseJson(text.value, {});
      if (!parsed.ok) {
        toast(`Not valid JSON: ${parsed.error}`, "error");
        text.focus();
        return;
      }
      const body = { values: parsed.value, checkpoint_id: cp };
      if (asNode.value.trim()) body.as_node = asNode.value.trim();
      try {
        const res = await api.updateState(this.threadId, body);
        toast(`State saved as checkpoint ${shortId(res && res.checkpoint && res.checkpoint.checkpoint_id)}`, "success");
        onClose();
        this.selectedCheckpoint = res && res.checkpoint ? res.checkpoint.checkpoint_id : null;
        this.history = null;
        await this.refreshAll();
        if (this.tabs.selected() === "history") await this.loadHistory();
      } catch (err) {
        toast(`Could not save state: ${err.message}`, "error");
      }
    });
    mount(host, form);
    text.focus();
  }

  setFork(checkpoint) {
    this.forkFrom = checkpoint;
    if (checkpoint) {
      mount(this.forkBanner, icon("fork", 14),
        h("span", {}, "Next run forks from checkpoint ", h("code", { text: shortId(checkpoint.checkpoint_id) }),
          checkpoint.step !== undefined ? ` (step ${checkpoint.step})` : ""),
        button("Cancel fork", { icon: "x", hideLabel: true, cls: "btn-ghost", onClick: () => this.setFork(null) }));
      this.forkBanner.hidden = false;
    } else this.forkBanner.hidden = true;
    this.renderComposerState();
  }

  renderHistory() {
    if (!this.alive) return;
    if (this.history === null) {
      mount(this.historyEl, h("p", { class: "muted pad", text: "Loading history…" }));
      return;
    }
    if (this.historyEditing) return;
    const head = this.state && this.state.checkpoint && this.state.checkpoint.checkpoint_id;
    if (!this.history.length) {
      mount(this.historyEl, h("div", { class: "empty-panel" }, h("p", { text: "No checkpoints yet." }), h("p", { class: "muted small", text: "Every step of a run saves a checkpoint you can inspect, edit and fork from." })));
      return;
    }
    const selectedId = this.selectedCheckpoint && this.history.some((s) => s.checkpoint.checkpoint_id === this.selectedCheckpoint)
      ? this.selectedCheckpoint : null;
    const list = h("ol", { class: "history-list", "aria-label": "Checkpoints, newest first" }, this.history.map((snap) => {
      const id = snap.checkpoint.checkpoint_id;
      const md = snap.metadata || {};
      const writes = md.writes && typeof md.writes === "object" ? Object.keys(md.writes) : [];
      const nMsgs = Array.isArray(snap.values && snap.values.messages) ? snap.values.messages.length : null;
      const hasIntr = (snap.interrupts || []).length > 0;
      return h("li", {}, h("button", {
        type: "button", class: ["history-item", id === selectedId && "selected"], "aria-pressed": String(id === selectedId),
        dataset: { testid: "checkpoint", checkpointId: id, step: md.step ?? "" },
        on: { click: () => { this.selectedCheckpoint = id === selectedId ? null : id; this.renderHistory(); } },
      },
      h("span", { class: "history-step", text: md.step !== undefined ? `#${md.step}` : "#?" }),
      h("span", { class: "history-main" },
        h("span", { class: "history-title" }, md.source || "checkpoint",
          (snap.next || []).length ? h("span", { class: "muted", text: ` → ${snap.next.join(", ")}` }) : h("span", { class: "muted", text: " → end" })),
        h("span", { class: "history-sub" },
          h("span", { class: "mono", text: shortId(id) }),
          nMsgs !== null ? h("span", { text: `${nMsgs} message${nMsgs === 1 ? "" : "s"}` }) : h("span", { text: `${Object.keys(snap.values || {}).length} keys` }),
          writes.length ? h("span", { text: `by ${writes.join(", ")}` }) : null,
          h("span", { text: relTime(snap.created_at), title: snap.created_at || "" }))),
      id === head ? h("span", { class: "badge badge-head", text: "head" }) : null,
      hasIntr ? h("span", { class: "badge badge-interrupted", text: "interrupt" }) : null));
    }));
    const snap = selectedId ? this.history.find((s) => s.checkpoint.checkpoint_id === selectedId) : null;
    let detail = h("p", { class: "muted small pad", text: "Select a checkpoint to see its values, edit it or fork a new run from it." });
    if (snap) {
      const cp = { checkpoint_id: snap.checkpoint.checkpoint_id, step: snap.metadata && snap.metadata.step };
      detail = h("section", { class: "checkpoint-detail", "aria-label": "Selected checkpoint", dataset: { testid: "checkpoint-detail" } },
        h("div", { class: "panel-toolbar" }, h("h2", { class: "small-title" }, "Checkpoint ", h("code", { text: shortId(cp.checkpoint_id) })),
          h("div", { class: "checkpoint-actions" },
            button("Fork from here", { icon: "fork", cls: "btn-primary btn-small", onClick: () => {
              this.setFork(cp);
              (this.mode === "chat" ? this.chatInput : this.jsonInput).focus();
              toast("Fork armed: the next run starts from this checkpoint", "info", 3000);
            } }),
            button("Re-run from here", { icon: "refresh", cls: "btn-small", onClick: () => this.rerunFrom(cp) }),
            button("Edit state here", { icon: "edit", cls: "btn-small", onClick: () => {
              this.historyEditing = true;
              const host = h("div", {});
              mount(this.historyEl, host);
              this.openStateEditor(host, snap, () => { this.historyEditing = false; this.renderHistory(); });
            } }))),
        h("dl", { class: "facts" },
          h("dt", { text: "Next" }), h("dd", {}, (snap.next || []).length ? snap.next.map((n) => h("code", { class: "chip", text: n })) : h("span", { class: "muted", text: "— (done)" })),
          h("dt", { text: "Parent" }), h("dd", { class: "mono", text: snap.parent_checkpoint ? shortId(snap.parent_checkpoint.checkpoint_id) : "—" }),
          h("dt", { text: "Saved" }), h("dd", { text: fmtTime(snap.created_at) })),
        h("h3", { class: "sub", text: "values" }), jsonTree(snap.values || {}, { expandDepth: 1, label: "Values at checkpoint" }),
        h("details", { class: "raw-json" }, h("summary", { text: "metadata" }), jsonTree(snap.metadata || {}, { expandDepth: 1, label: "Checkpoint metadata" })));
    }
    mount(this.historyEl,
      h("div", { class: "panel-toolbar" }, h("h2", { class: "small-title", text: `History (${this.history.length})` }),
        button("Refresh", { icon: "refresh", onClick: () => this.loadHistory() })),
      h("div", { class: "history-layout" }, list, detail));
  }

  async rerunFrom(cp) {
    let body;
    try {
      body = this.runBody({ input: null, checkpoint_id: cp.checkpoint_id });
    } catch (err) {
      toast(err.message, "error");
      return;
    }
    await this.startStream(body, { label: "replay" });
  }

  renderRuns() {
    if (!this.alive) return;
    const active = this.runs.filter((r) => ACTIVE.has(r.status)).length;
    this.tabs.setBadge("runs", active ? h("span", { class: "count", text: String(active) }) : null);
    const sig = JSON.stringify(this.runs.map((r) => [r.run_id, r.status, r.updated_at]));
    if (sig === this.runsSig && this.runsEl.firstChild) return;
    this.runsSig = sig;
    mount(this.runsEl,
      h("div", { class: "panel-toolbar" }, h("h2", { class: "small-title", text: `Runs (${this.runs.length})` }),
        button("Refresh", { icon: "refresh", onClick: () => this.loadRuns() })),
      this.runs.length ? h("ul", { class: "runs-list", "aria-label": "Runs on this thread, newest first" }, this.runs.map((r) => {
        const kw = r.kwargs || {};
        const what = kw.command ? `resume ${JSON.stringify(kw.command.resume ?? kw.command).slice(0, 40)}` : kw.input ? JSON.stringify(kw.input).slice(0, 60) : "no input";
        return h("li", { class: "run-row", dataset: { testid: "run", runId: r.run_id, status: r.status } },
          h("div", { class: "run-main" },
            h("div", { class: "run-line" }, badge(r.status), h("span", { class: "mono", title: r.run_id, text: shortId(r.run_id) }),
              h("span", { class: "muted small", text: relTime(r.created_at), title: r.created_at })),
            h("div", { class: "muted small ellipsis", title: what, text: what }),
            h("div", { class: "muted small" }, `strategy ${r.multitask_strategy || "enqueue"}`)),
          ACTIVE.has(r.status) ? button("Cancel", { icon: "stop", cls: "btn-danger-ghost", attrs: { "aria-label": `Cancel run ${shortId(r.run_id)}` }, onClick: () => this.cancelRun(r.run_id) }) : null);
      })) : h("div", { class: "empty-panel" }, h("p", { text: "No runs yet." })));
  }

  renderGraphPanel() {
    if (!this.alive) return;
    if (!this.graph) {
      mount(this.graphEl, h("p", { class: "muted pad", text: "Loading graph…" }));
      this.graphSvg = null;
      return;
    }
    if (!this.graphSvg) {
      const a = store.assistant(this.assistantId);
      this.graphSvg = renderGraph(this.graph, { title: `Graph of ${a ? a.graph_id : "assistant"}` });
      mount(this.graphEl, h("p", { class: "muted small legend" },
        h("span", { class: "lg lg-active" }), "running ", h("span", { class: "lg lg-done" }), "done ",
        h("span", { class: "lg lg-interrupted" }), "interrupted ", h("span", { class: "lg lg-error" }), "error"), this.graphSvg);
    }
    const run = this.live || this.lastRun;
    const status = {};
    if (run) {
      const rank = { done: 1, interrupted: 2, error: 3, running: 4 };
      for (const e of run.entries) {
        const s = e.status === "running" ? "active" : e.status === "cancelled" ? null : e.status;
        if (!s) continue;
        const keys = [e.name, ...(this.graph.nodes || []).map((n) => String(n.id)).filter((id) => id.startsWith(`${e.name}:`))];
        for (const k of keys) {
          const prev = status[k];
          const weight = (x) => rank[x === "active" ? "running" : x] || 0;
          if (!prev || weight(s) >= weight(prev)) status[k] = s;
        }
      }
      if (run.entries.length && run.status === "success") {
        status.__start__ = "done";
        status.__end__ = "done";
      }
    }
    this.graphSvg.setStatus(status);
  }
}
