// The public HTTP API, same origin. Every screen goes through these helpers.

import { readSSE } from "./sse.js";

// The API lives next to /studio/; keep any path prefix a reverse proxy added in front.
export const BASE = location.pathname.replace(/\/studio(\/.*)?$/, "");

export class ApiError extends Error {
  constructor(status, detail, path) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
    this.path = path;
  }
}

function describe(detail) {
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  }
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

async function fail(res, path) {
  let detail = res.statusText || `HTTP ${res.status}`;
  try {
    const text = await res.text();
    if (text) {
      const body = JSON.parse(text);
      detail = body.detail !== undefined ? describe(body.detail) : text;
    }
  } catch {
    /* keep the status text */
  }
  throw new ApiError(res.status, detail, path);
}

const KEY = "skeino.apiKey";

/**
 * fetch() with the API key of this tab, if any. A server that wants a key (401) gets asked
 * for one once; the key lives in sessionStorage, so it leaves with the tab.
 */
async function send(path, init) {
  const key = sessionStorage.getItem(KEY);
  // Both headers: API keys are read from either, a custom auth handler usually reads Authorization.
  const auth = key ? { "x-api-key": key, Authorization: `Bearer ${key}` } : null;
  const res = await fetch(BASE + path, auth ? { ...init, headers: { ...init.headers, ...auth } } : init);
  if (res.status !== 401) return res;
  // Requests sent together all fail together: once one of them got a key, the rest use it.
  const current = sessionStorage.getItem(KEY);
  if (current && current !== key) return send(path, init);
  const entered = window.prompt(key ? "That API key was refused. API key:" : "This server needs an API key:");
  if (!entered) return res;
  sessionStorage.setItem(KEY, entered.trim());
  return send(path, init);
}

/** JSON request; answers the parsed body, or null for an empty body (202/204). */
export async function request(path, { method = "GET", body, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await send(path, init);
  if (!res.ok) await fail(res, path);
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/**
 * Open an SSE stream (POST to create a run, GET to join one) and call `onEvent`
 * for each event with {event, data, id}. Resolves when the stream ends.
 */
export async function stream(path, { method = "POST", body, headers = {}, signal, onEvent, onOpen } = {}) {
  const init = { method, headers: { Accept: "text/event-stream", ...headers }, signal, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await send(path, init);
  if (!res.ok) await fail(res, path);
  if (onOpen) onOpen(res);
  for await (const ev of readSSE(res.body, signal)) {
    let data = ev.data;
    if (data) {
      try {
        data = JSON.parse(data);
      } catch {
        /* leave non-JSON data as text */
      }
    }
    onEvent({ event: ev.event, data, id: ev.id });
  }
}

const enc = encodeURIComponent;

export const api = {
  info: () => request("/info"),

  searchAssistants: (body = { limit: 100 }) => request("/assistants/search", { method: "POST", body }),
  getAssistant: (id) => request(`/assistants/${enc(id)}`),
  getGraph: (id, xray = false) => request(`/assistants/${enc(id)}/graph${xray ? "?xray=true" : ""}`),
  getSchemas: (id) => request(`/assistants/${enc(id)}/schemas`),

  searchThreads: (body) => request("/threads/search", { method: "POST", body }),
  createThread: (body = {}) => request("/threads", { method: "POST", body }),
  getThread: (id) => request(`/threads/${enc(id)}`),
  deleteThread: (id) => request(`/threads/${enc(id)}`, { method: "DELETE" }),
  getState: (id) => request(`/threads/${enc(id)}/state`),
  getStateAt: (id, checkpointId) => request(`/threads/${enc(id)}/state/${enc(checkpointId)}`),
  updateState: (id, body) => request(`/threads/${enc(id)}/state`, { method: "POST", body }),
  history: (id, body = { limit: 50 }) => request(`/threads/${enc(id)}/history`, { method: "POST", body }),

  listRuns: (id, limit = 50) => request(`/threads/${enc(id)}/runs?limit=${limit}`),
  cancelRun: (id, runId, action = "interrupt") =>
    request(`/threads/${enc(id)}/runs/${enc(runId)}/cancel?action=${enc(action)}`, { method: "POST" }),

  streamRun: (threadId, body, opts) => stream(`/threads/${enc(threadId)}/runs/stream`, { method: "POST", body, ...opts }),
  joinRun: (threadId, runId, lastEventId, opts) => stream(`/threads/${enc(threadId)}/runs/${enc(runId)}/stream`, {
    method: "GET", headers: lastEventId !== null && lastEventId !== undefined ? { "Last-Event-ID": String(lastEventId) } : {}, ...opts,
  }),
};
