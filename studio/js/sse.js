// A small Server-Sent Events reader over a fetch() body stream. EventSource
// cannot POST or set headers, and runs/stream is a POST, so we parse by hand
// following the WHATWG event-stream rules: fields `event`, `data` (joined by
// newlines), `id`; lines starting with ":" are comments (heartbeats); a blank
// line dispatches the event.

export async function* readSSE(body, signal) {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  let event = "";
  let data = [];
  let id = null;
  let hasData = false;
  const onAbort = () => reader.cancel().catch(() => {});
  if (signal) signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (signal && signal.aborted) return;
        throw err;
      }
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) !== -1) {
        const line = buffer.slice(0, nl);
        const sepLen = buffer[nl] === "\r" && buffer[nl + 1] === "\n" ? 2 : 1;
        // A lone "\r" at the end of the buffer may be the first half of "\r\n".
        if (buffer[nl] === "\r" && nl + 1 === buffer.length) break;
        buffer = buffer.slice(nl + sepLen);
        if (line === "") {
          if (hasData || event) yield { event: event || "message", data: data.join("\n"), id };
          event = "";
          data = [];
          hasData = false;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event = value;
        else if (field === "data") {
          data.push(value);
          hasData = true;
        } else if (field === "id") {
          if (!value.includes("\0")) id = value;
        }
      }
    }
    buffer += decoder.decode();
    if (hasData) yield { event: event || "message", data: data.join("\n"), id };
  } finally {
    if (signal) signal.removeEventListener("abort", onAbort);
    try {
      reader.releaseLock();
    } catch {
      /* already released */
    }
  }
}
