// The live state of one streamed run, built from its SSE events. Plain data so
// it can be saved to sessionStorage and restored after a page reload.

const STORE_PREFIX = "skeino.studio.run.";
/** sessionStorage key prefix for "start this run when the thread opens" (set by the assistant screen). */
export const AUTOSTART_PREFIX = "skeino.studio.autostart.";

export function newRun(extra = {}) {
  return {
    runId: null,
    lastEventId: null,
    status: "starting", // starting | queued | running | success | error | interrupted | cancelled
    startedAt: Date.now(),
    endedAt: null,
    entries: [], // node trace: {key, id, name, ns, step, status, start, end, update, result, error, interrupts}
    buffers: [], // messages streamed but not yet in values: {id, node, message}
    values: null, // latest `values` event
    interrupts: [], // from __interrupt__ updates / values / task results
    error: null, // {error, message, node}
    events: 0,
    ...extra,
  };
}

function splitEvent(name) {
  const bar = name.indexOf("|");
  return bar === -1 ? { mode: name, ns: "" } : { mode: name.slice(0, bar), ns: name.slice(bar + 1) };
}

function nsLabel(ns) {
  // "child:3a1…|grand:…" -> "child › grand"
  return ns ? ns.split("|").map((p) => p.split(":")[0]).join(" › ") : "";
}

function textOf(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((p) => (typeof p === "string" ? p : p && p.type === "text" ? p.text || "" : "")).join("");
  }
  return "";
}

function isChunk(msg) {
  return typeof msg.type === "string" && msg.type.endsWith("Chunk");
}

function mergeChunk(prev, chunk) {
  const merged = { ...prev };
  merged.content = textOf(prev.content) + textOf(chunk.content);
  merged.type = chunk.type || prev.type;
  const calls = (prev.tool_call_chunks || []).map((c) => ({ ...c }));
  for (const c of chunk.tool_call_chunks || []) {
    const idx = c.index ?? calls.length;
    const existing = calls.find((x) => (x.index ?? -1) === idx);
    if (existing) {
      existing.args = (existing.args || "") + (c.args || "");
      if (c.name) existing.name = c.name;
      if (c.id) existing.id = c.id;
    } else calls.push({ ...c, index: idx, args: c.args || "" });
  }
  merged.tool_call_chunks = calls;
  if (chunk.usage_metadata) merged.usage_metadata = chunk.usage_metadata;
  return merged;
}

function openEntry(run, name, ns) {
  // Oldest first: parallel tasks of one node (Send) finish roughly in start order.
  return run.entries.find((e) => e.name === name && e.ns === ns && e.status === "running") || null;
}

function addEntry(run, fields) {
  const entry = {
    key: `${run.entries.length}`, id: null, name: "?", ns: "", step: null, status: "running",
    start: Date.now(), end: null, update: undefined, result: undefined, error: null, interrupts: [], ...fields,
  };
  run.entries.push(entry);
  return entry;
}

/** Apply one SSE event to the run. Returns a hint of what changed. */
export function applyEvent(run, { event, data, id }) {
  if (id !== null && id !== undefined) run.lastEventId = id;
  run.events += 1;
  const { mode, ns } = splitEvent(event || "message");
  const now = Date.now();
  switch (mode) {
    case "metadata":
      if (data && data.run_id) run.runId = data.run_id;
      if (run.status === "starting") run.status = "running";
      return "meta";
    case "values": {
      if (ns) return "subvalues";
      const { __interrupt__: intr, ...values } = data || {};
      run.values = values;
      if (Array.isArray(intr) && intr.length) run.interrupts = intr;
      // A values event closes a superstep: everything streamed so far is in it now.
      run.buffers = [];
      return "values";
    }
    case "messages": {
      if (!Array.isArray(data) || !data[0] || typeof data[0] !== "object") return null;
      const [msg, meta] = data;
      const node = (meta && meta.langgraph_node) || "";
      const msgId = msg.id || `anon-${run.buffers.length}`;
      const at = run.buffers.findIndex((b) => b.id === msgId);
      if (at === -1) run.buffers.push({ id: msgId, node, message: isChunk(msg) ? mergeChunk({ content: "" }, msg) : msg });
      else run.buffers[at].message = isChunk(msg) ? mergeChunk(run.buffers[at].message, msg) : msg;
      if (node && !openEntry(run, node, nsLabel(ns)) && !run.entries.some((e) => e.name === node && e.status === "running")) {
        addEntry(run, { name: node, ns: nsLabel(ns), step: meta.langgraph_step ?? null, via: "messages" });
      }
      return "messages";
    }
    case "tasks": {
      if (!data || typeof data !== "object") return null;
      const nsl = nsLabel(ns);
      const isResult = "result" in data || "error" in data || "interrupts" in data && !("input" in data);
      if (!isResult) {
        const pending = run.entries.find((e) => e.status === "running" && e.name === data.name && e.ns === nsl && !e.id);
        if (pending) Object.assign(pending, { id: data.id });
        else addEntry(run, { id: data.id, name: data.name, ns: nsl, input: data.input, step: data.metadata?.langgraph_step ?? null });
        return "trace";
      }
      let entry = run.entries.find((e) => e.id && e.id === data.id);
      if (!entry) entry = openEntry(run, data.name, nsl) || addEntry(run, { id: data.id, name: data.name, ns: nsl, start: now });
      entry.end = now;
      entry.result = data.result;
      const interrupts = Array.isArray(data.interrupts) ? data.interrupts : [];
      entry.interrupts = interrupts;
      if (data.error) {
        entry.status = "error";
        entry.error = typeof data.error === "string" ? { message: data.error } : data.error;
      } else entry.status = interrupts.length ? "interrupted" : "done";
      if (interrupts.length && !ns) run.interrupts = interrupts;
      return "trace";
    }
    case "updates": {
      if (!data || typeof data !== "object") return null;
      const nsl = nsLabel(ns);
      for (const [node, update] of Object.entries(data)) {
        if (node === "__interrupt__") {
          if (!ns) run.interrupts = Array.isArray(update) ? update : [update];
          const list = Array.isArray(update) ? update : [update];
          const known = new Set(run.entries.flatMap((e) => e.interrupts.map((i) => i.id)));
          if (list.every((i) => i && known.has(i.id))) continue;
          const waiting = [...run.entries].reverse().find((e) => e.status === "running" && e.ns === nsl);
          if (waiting) {
            waiting.status = "interrupted";
            waiting.end = now;
            waiting.interrupts = Array.isArray(update) ? update : [update];
          } else addEntry(run, { name: "interrupt", ns: nsl, status: "interrupted", end: now, interrupts: Array.isArray(update) ? update : [update] });
          continue;
        }
        let entry = openEntry(run, node, nsl);
        if (!entry) {
          // No `tasks` mode: an update marks the node as finished; time it from the previous event.
          const prev = run.entries[run.entries.length - 1];
          entry = addEntry(run, { name: node, ns: nsl, start: prev && prev.end ? prev.end : run.startedAt });
        }
        entry.update = update;
        if (entry.status === "running") {
          entry.status = "done";
          entry.end = now;
        }
      }
      return "trace";
    }
    case "error": {
      const err = data && typeof data === "object" ? data : { error: "Error", message: String(data ?? "") };
      const running = [...run.entries].reverse().find((e) => e.status === "running");
      const failed = running || [...run.entries].reverse().find((e) => e.status === "error");
      run.error = { error: err.error || "Error", message: err.message || "", node: failed ? failed.name : null };
      if (running) {
        running.status = "error";
        running.end = now;
        running.error = run.error;
      }
      run.status = "error";
      return "error";
    }
    case "custom": {
      // Stream-writer output: attach it to the node that is running in that namespace.
      const nsl = nsLabel(ns);
      const entry = [...run.entries].reverse().find((e) => e.status === "running" && e.ns === nsl)
        || [...run.entries].reverse().find((e) => e.status === "running")
        || run.entries[run.entries.length - 1];
      if (entry) (entry.custom || (entry.custom = [])).push(data);
      return "trace";
    }
    case "end":
      return "end";
    default:
      return null;
  }
}

/** The stream is over: settle any node still marked running. */
export function finishRun(run, status) {
  run.endedAt = Date.now();
  if (run.status !== "error") run.status = status || (run.interrupts.length ? "interrupted" : "success");
  for (const e of run.entries) {
    if (e.status === "running") {
      e.status = run.status === "success" ? "done" : run.status === "error" ? "error" : "cancelled";
      e.end = e.end || run.endedAt;
    }
  }
}

export function saveRun(threadId, run) {
  try {
    sessionStorage.setItem(STORE_PREFIX + threadId, JSON.stringify(run));
  } catch {
    /* storage full or disabled: reconnect just starts from now */
  }
}

export function loadRun(threadId) {
  try {
    const raw = sessionStorage.getItem(STORE_PREFIX + threadId);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function forgetRun(threadId) {
  try {
    sessionStorage.removeItem(STORE_PREFIX + threadId);
  } catch {
    /* ignore */
  }
}

export { textOf };
