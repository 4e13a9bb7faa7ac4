// A minimal chat page on @langchain/react's useStream (protocol v2), for the browser test.
// Query: ?api=<server url>&assistant=<graph>[&transport=sse|websocket][&slow=1][&thread=<id>].
// The thread id goes into the URL as soon as it is known, so a reload re-attaches to the same thread.
import { useStream } from "@langchain/react";
import { useEffect, useState } from "react";
import { createRoot } from "react-dom/client";

const query = new URLSearchParams(window.location.search);
// Every text each AI message showed, render after render: the test reads the stream's progress here.
window.__aiTexts = [];

function text(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((b) => (typeof b === "string" ? b : b?.text ?? "")).join("");
  return "";
}

function role(msg) {
  return msg.type ?? (typeof msg.getType === "function" ? msg.getType() : msg.role);
}

function Chat() {
  const [draft, setDraft] = useState("");
  const stream = useStream({
    apiUrl: query.get("api"),
    assistantId: query.get("assistant"),
    threadId: query.get("thread") || undefined,
    transport: query.get("transport") || "sse",
    onThreadId: (id) => {
      query.set("thread", id);
      window.history.replaceState(null, "", `?${query}`);
    },
  });
  const messages = stream.messages ?? [];
  useEffect(() => {
    for (const msg of messages) if (role(msg) === "ai") window.__aiTexts.push(text(msg.content));
  }, [messages]);
  const send = () => {
    const config = query.get("slow") ? { configurable: { fake_token_delay: 0.05, fake_tokens: 24 } } : undefined;
    void stream.submit({ messages: [{ type: "human", content: draft }] }, config ? { config } : undefined);
    setDraft("");
  };
  return (
    <main>
      <ol id="messages">
        {messages.map((msg, i) => (
          <li key={msg.id ?? i} data-role={role(msg)}>{text(msg.content)}</li>
        ))}
      </ol>
      {stream.interrupt && (
        <section id="interrupt">
          <p id="question">{stream.interrupt.value?.question}</p>
          <button id="approve" onClick={() => void stream.respond("yes")}>Approve</button>
        </section>
      )}
      <p id="status">{stream.isLoading ? "running" : "idle"}</p>
      {stream.error && <p id="error">{String(stream.error?.message ?? stream.error)}</p>}
      <input id="draft" value={draft} onChange={(e) => setDraft(e.target.value)} />
      <button id="send" onClick={send}>Send</button>
    </main>
  );
}

createRoot(document.getElementById("root")).render(<Chat />);
