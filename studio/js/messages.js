// Render LangChain message dicts as chat bubbles: user, assistant (Markdown),
// tool calls and tool results each with their own look.

import { h, icon, pretty } from "./dom.js";
import { markdownElement } from "./markdown.js";
import { jsonTree } from "./jsontree.js";
import { textOf } from "./runstate.js";

export function roleOf(msg) {
  const t = String(msg.type || msg.role || "").replace(/Chunk$/, "").toLowerCase();
  if (t === "human" || t === "user") return "user";
  if (t === "ai" || t === "assistant" || t === "aimessage") return "assistant";
  if (t === "tool" || t === "function") return "tool";
  if (t === "system" || t === "developer") return "system";
  return t || "assistant";
}

function parseArgs(args) {
  if (args && typeof args === "object") return args;
  if (typeof args !== "string" || !args.trim()) return {};
  try {
    return JSON.parse(args);
  } catch {
    return args; // still streaming: partial JSON shown as text
  }
}

/** Tool calls of a message: final `tool_calls`, else the streamed `tool_call_chunks`. */
export function toolCallsOf(msg) {
  const finals = (msg.tool_calls || []).filter((c) => c && c.name);
  const chunks = (msg.tool_call_chunks || []).filter((c) => c && (c.name || c.args));
  if (finals.length && !chunks.length) return finals.map((c) => ({ id: c.id, name: c.name, args: c.args, partial: false }));
  if (chunks.length) return chunks.map((c) => ({ id: c.id, name: c.name || "…", args: parseArgs(c.args), partial: typeof parseArgs(c.args) === "string" }));
  return finals.map((c) => ({ id: c.id, name: c.name, args: c.args, partial: false }));
}

function toolCallCard(call) {
  const args = call.args;
  return h("div", { class: "tool-call", role: "group", "aria-label": `Tool call ${call.name}`, dataset: { testid: "tool-call", toolName: call.name } },
    h("div", { class: "tool-head" }, icon("tool", 14), h("span", { class: "tool-label", text: "Tool call" }),
      h("code", { class: "tool-name", text: call.name }), call.id ? h("span", { class: "muted mono small", text: call.id }) : null),
    typeof args === "string"
      ? h("pre", { class: "tool-args", text: args })
      : h("pre", { class: "tool-args", text: pretty(args) }));
}

function contentBody(msg) {
  const text = textOf(msg.content);
  if (text) return markdownElement(text);
  if (msg.content && typeof msg.content === "object" && !Array.isArray(msg.content)) return jsonTree(msg.content, { expandDepth: 1 });
  return null;
}

/**
 * One message element. `streaming` adds the typing caret; the element carries
 * data-message-id / data-role so tests and styles can find it.
 */
export function messageElement(msg, { streaming = false } = {}) {
  const role = roleOf(msg);
  const attrs = { class: ["msg", `msg-${role}`, streaming && "streaming"], dataset: { role, messageId: msg.id || "" } };
  if (role === "tool") {
    const status = msg.status === "error" ? "error" : "success";
    return h("article", { ...attrs, "aria-label": `Tool result from ${msg.name || "tool"}` },
      h("div", { class: ["tool-result", status === "error" && "is-error"], dataset: { testid: "tool-result" } },
        h("div", { class: "tool-head" }, icon(status === "error" ? "alert" : "check", 14),
          h("span", { class: "tool-label", text: "Tool result" }), h("code", { class: "tool-name", text: msg.name || "tool" }),
          msg.tool_call_id ? h("span", { class: "muted mono small", text: msg.tool_call_id }) : null),
        h("div", { class: "tool-output" }, contentBody(msg) || h("span", { class: "muted", text: "(empty)" }))));
  }
  const calls = role === "assistant" ? toolCallsOf(msg) : [];
  const body = contentBody(msg);
  const who = role === "user" ? "You" : role === "assistant" ? (msg.name || "Assistant") : role === "system" ? "System" : role;
  return h("article", { ...attrs, "aria-label": `${who} message` },
    h("div", { class: "msg-avatar", "aria-hidden": "true", text: role === "user" ? "U" : role === "assistant" ? "AI" : role[0].toUpperCase() }),
    h("div", { class: "msg-main" },
      h("div", { class: "msg-who", text: who }),
      body || calls.length ? null : h("div", { class: "msg-body muted", text: streaming ? "…" : "(no content)" }),
      body ? h("div", { class: "msg-body", dataset: { testid: "msg-text" } }, body) : null,
      calls.map(toolCallCard)));
}

/** A signature that changes whenever the rendered output of a message would. */
export function messageKey(msg, streaming) {
  const calls = JSON.stringify(msg.tool_call_chunks || msg.tool_calls || []);
  return `${msg.type}|${textOf(msg.content).length}|${textOf(msg.content).slice(-24)}|${calls.length}|${calls.slice(-24)}|${streaming ? 1 : 0}|${msg.status || ""}`;
}
