"""Agent2Agent (A2A v0.3) shapes: LangChain messages and run outcomes as the official SDK's types.

Tasks are runs and context ids are threads. A task id is `<context_id>:<run_id>` of the run
that started it (as on the official server), so `tasks/get` needs nothing else; the user
message that starts a task is stamped `additional_kwargs.a2a.task_id`, which attributes every
later message of the thread to its task.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from a2a.compat.v0_3 import types as a2a

Jsonable = dict[str, Any]

# A run's status as a task's state; an interrupted *thread* after a successful run is input-required.
_STATES = {
    "pending": a2a.TaskState.submitted, "running": a2a.TaskState.working, "success": a2a.TaskState.completed,
    "interrupted": a2a.TaskState.canceled, "error": a2a.TaskState.failed, "timeout": a2a.TaskState.failed,
}
TERMINAL = frozenset({a2a.TaskState.completed, a2a.TaskState.failed, a2a.TaskState.canceled,
                      a2a.TaskState.rejected})
_USER_TYPES = {"human", "humanmessage", "humanmessagechunk", "user"}
_AGENT_TYPES = {"ai", "aimessage", "aimessagechunk", "assistant"}


class PartsError(ValueError):
    """Message parts skeino cannot turn into graph input (the A2A content-type error)."""


def now() -> str:
    return datetime.now(UTC).isoformat()


def dump(model: Any) -> Jsonable:
    """An A2A model as its JSON wire form (camelCase, no nulls)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def make_task_id(context_id: str, run_id: str) -> str:
    return f"{context_id}:{run_id}"


def parse_task_id(task_id: str) -> tuple[str, str] | None:
    context_id, sep, run_id = task_id.partition(":")
    return (context_id, run_id) if sep and context_id and run_id else None


def run_task_id(run: Jsonable) -> str:
    """The task a run belongs to: the one it continues, else the one it started."""
    stored = ((run.get("metadata") or {}).get("a2a") or {}).get("task_id")
    return stored if isinstance(stored, str) and stored else make_task_id(run["thread_id"], run["run_id"])


def task_state(run_status: str, thread_interrupted: bool) -> a2a.TaskState:
    if run_status == "success" and thread_interrupted:
        return a2a.TaskState.input_required
    return _STATES.get(run_status, a2a.TaskState.submitted)


def graph_input(parts: list[a2a.Part], message_id: str, task_id: str, message_type: str = "human") -> Jsonable:
    """Text parts become one message (id = the A2A messageId); data parts are merged into the input."""
    texts: list[str] = []
    data: Jsonable = {}
    for part in parts:
        root = part.root
        if isinstance(root, a2a.TextPart):
            texts.append(root.text)
        elif isinstance(root, a2a.DataPart):
            data.update(root.data)
        else:
            raise PartsError("File parts are not supported: send text or data parts")
    graph: Jsonable = dict(data)
    if texts:
        graph["messages"] = [{"type": message_type, "content": "\n".join(texts), "id": message_id,
                              "additional_kwargs": {"a2a": {"task_id": task_id}}}]
    return graph


def text_of(content: Any) -> str:
    """Public text of LangChain message content (text blocks joined; other blocks dropped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b if isinstance(b, str) else b.get("text", "") for b in content
                       if isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text"))
    return "" if content is None else str(content)


def role_of(message: Any) -> a2a.Role | None:
    """user or agent for human and AI messages; None for tool and system messages, which are internal."""
    if not isinstance(message, dict):
        return None
    label = str(message.get("type") or message.get("role") or "").lower()
    if label in _USER_TYPES:
        return a2a.Role.user
    if label in _AGENT_TYPES:
        return a2a.Role.agent
    return None


def _stamp(message: Jsonable) -> str | None:
    stamp = ((message.get("additional_kwargs") or {}).get("a2a") or {}).get("task_id")
    return stamp if isinstance(stamp, str) else None


def history(messages: list[Any], context_id: str, task_id: str, *, until_task: bool = False,
            length: int | None = None) -> list[a2a.Message]:
    """The thread's public messages as A2A messages, each with the task it belongs to.

    Messages before the first stamped one belong to `task_id`. With `until_task`, the
    history ends with the task's last message (the context as that task left it).
    """
    current = task_id
    out: list[a2a.Message] = []
    for message in messages:
        role = role_of(message)
        if role is None:
            continue
        current = _stamp(message) or current
        text = text_of(message.get("content"))
        if role is a2a.Role.agent and not text:
            continue  # a tool-calling step says nothing to the other agent
        out.append(a2a.Message(role=role, parts=[a2a.Part(root=a2a.TextPart(text=text))],
                               message_id=message.get("id") or str(uuid.uuid4()),
                               task_id=current, context_id=context_id))
    if until_task:
        last = max((i for i, m in enumerate(out) if m.task_id == task_id), default=-1)
        out = out[:last + 1]
    if length is not None:
        out = out[-length:] if length else []
    return out


def reply_text(values: Any) -> str:
    """The agent's answer: the last AI message with text after the last user message."""
    messages = values.get("messages") if isinstance(values, dict) else None
    if not isinstance(messages, list) or not messages:
        return str(values)
    start = max((i + 1 for i, m in enumerate(messages) if role_of(m) is a2a.Role.user), default=0)
    for message in reversed(messages[start:]):
        if role_of(message) is a2a.Role.agent and text_of(message.get("content")):
            return text_of(message["content"])
    return ""


def response_artifact(text: str, assistant_id: str) -> a2a.Artifact:
    return a2a.Artifact(artifact_id=str(uuid.uuid4()), name="Assistant Response",
                        description=f"Response from assistant {assistant_id}",
                        parts=[a2a.Part(root=a2a.TextPart(text=text))])


def interrupt_artifact(interrupts: list[Any]) -> a2a.Artifact:
    parts = [a2a.Part(root=a2a.DataPart(data={"id": i.get("id"), "value": i.get("value")}))
             for i in interrupts if isinstance(i, dict)]
    return a2a.Artifact(artifact_id=str(uuid.uuid4()), name="Interrupt",
                        description="Agent requires input to continue", parts=parts)


def agent_message(text: str, task_id: str, context_id: str | None = None) -> a2a.Message:
    return a2a.Message(role=a2a.Role.agent, parts=[a2a.Part(root=a2a.TextPart(text=text))],
                       message_id=str(uuid.uuid4()), task_id=task_id, context_id=context_id)


def outcome(values: Any, run_status: str, task_id: str, context_id: str, assistant_id: str
            ) -> tuple[a2a.TaskStatus, list[a2a.Artifact]]:
    """A finished run's status and artifacts: canceled, failed, input-required (with the interrupts) or completed."""
    if run_status == "interrupted":  # cancelled before it finished: no answer to give
        return a2a.TaskStatus(state=a2a.TaskState.canceled, timestamp=now(),
                              message=agent_message("Task was canceled", task_id, context_id)), []
    if isinstance(values, dict) and values.get("__error__"):
        error = values["__error__"]
        kind = error.get("error") if isinstance(error, dict) else error
        text = f"Error executing assistant: {kind}"
        return a2a.TaskStatus(state=a2a.TaskState.failed, message=agent_message(text, task_id, context_id),
                              timestamp=now()), []
    if isinstance(values, dict) and values.get("__interrupt__"):
        return (a2a.TaskStatus(state=a2a.TaskState.input_required, timestamp=now()),
                [interrupt_artifact(values["__interrupt__"])])
    return (a2a.TaskStatus(state=a2a.TaskState.completed, timestamp=now()),
            [response_artifact(reply_text(values), assistant_id)])


def agent_card(assistant: Jsonable, schemas: Jsonable, base_url: str, version: str) -> a2a.AgentCard:
    """The card of one assistant: one skill (itself), streaming, JSON-RPC at /a2a/{assistant_id}."""
    assistant_id = assistant["assistant_id"]
    name = assistant["name"]
    description = assistant.get("description") or f"{name} assistant"
    modes = ["application/json", "text/plain"]
    return a2a.AgentCard(
        name=name, description=description, url=f"{base_url.rstrip('/')}/a2a/{assistant_id}",
        version=version, protocol_version="0.3.0", preferred_transport="JSONRPC",
        capabilities=a2a.AgentCapabilities(streaming=True, push_notifications=False,
                                           state_transition_history=False),
        default_input_modes=modes, default_output_modes=modes,
        skills=[a2a.AgentSkill(id=f"{assistant_id}-main", name=f"{name} Capabilities", description=description,
                               tags=["assistant", "langgraph"], examples=[], input_modes=modes,
                               output_modes=modes)],
    )


def input_schema_has_messages(schemas: Jsonable) -> bool:
    schema = schemas.get("input_schema") or schemas.get("state_schema") or {}
    return "messages" in (schema.get("properties") or {})
