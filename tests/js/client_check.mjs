// Drives a skeino server with the official JavaScript client and prints what it saw as
// one JSON object on stdout; tests/test_js_client.py makes the assertions.
import { Client } from "@langchain/langgraph-sdk";

const client = new Client({ apiUrl: process.argv[2] });
const out = {};

async function collect(gen) {
  const parts = [];
  for await (const part of gen) parts.push(part);
  return parts;
}

// Assistants: each graph id is a default assistant.
const assistants = await client.assistants.search({ graphId: "counter", metadata: { created_by: "system" } });
out.counterAssistant = assistants.map((a) => ({ graph_id: a.graph_id, name: a.name }));

// Wait on a thread.
const thread = await client.threads.create({ metadata: { from: "js" } });
out.waitResult = await client.runs.wait(thread.thread_id, "counter", { input: { count: 0 } });
const afterWait = await client.threads.get(thread.thread_id);
out.threadAfterWait = { status: afterWait.status, metadata: afterWait.metadata, values: afterWait.values };

// Token streaming with two modes at once.
const chat = await client.threads.create();
const parts = await collect(
  client.runs.stream(chat.thread_id, "agent", {
    input: { messages: [{ role: "user", content: "hello from js" }] },
    streamMode: ["messages-tuple", "values"],
  }),
);
out.streamEvents = [...new Set(parts.map((p) => p.event))];
out.firstEvent = parts[0];
out.tokens = parts
  .filter((p) => p.event === "messages" && p.data[0].type === "AIMessageChunk")
  .map((p) => p.data[0].content);
out.lastValues = parts.filter((p) => p.event === "values").at(-1).data;

// Human in the loop: interrupt, then resume with a command.
const hitl = await client.threads.create();
const stopped = await client.runs.wait(hitl.thread_id, "hitl", { input: { task: "ship" } });
out.interrupt = stopped.__interrupt__;
out.hitlStatus = (await client.threads.get(hitl.thread_id)).status;
const state = await client.threads.getState(hitl.thread_id);
out.hitlNext = state.next;
out.resumed = await client.runs.wait(hitl.thread_id, "hitl", { command: { resume: "yes" } });
out.hitlStatusAfter = (await client.threads.get(hitl.thread_id)).status;

// Background run, join, and a resumable stream replayed after it ended.
const bg = await client.threads.create();
const run = await client.runs.create(bg.thread_id, "counter", {
  input: { count: 1 },
  streamMode: ["updates"],
  streamResumable: true,
});
out.joined = await client.runs.join(bg.thread_id, run.run_id);
out.runStatus = (await client.runs.get(bg.thread_id, run.run_id)).status;
const replay = await collect(client.runs.joinStream(bg.thread_id, run.run_id, { lastEventId: "-1" }));
out.replay = replay.map((p) => ({ id: p.id, event: p.event }));
const tail = await collect(client.runs.joinStream(bg.thread_id, run.run_id, { lastEventId: "1" }));
out.replayAfter1 = tail.map((p) => ({ id: p.id, event: p.event, data: p.data }));

// Stateless run.
out.stateless = await client.runs.wait(null, "counter", { input: { count: 5 } });

// Errors surface as the client's errors, with the server's status.
try {
  await client.threads.get("00000000-0000-0000-0000-000000000000");
  out.missingThread = "no error";
} catch (err) {
  out.missingThread = { status: err.status ?? null, message: String(err.message ?? err) };
}

console.log(JSON.stringify(out));
