"""Which scope each route needs, derived from its path template and method."""

from __future__ import annotations

from functools import lru_cache

# Open to anyone who can reach the server: liveness and what the server is.
PUBLIC = frozenset({"/ok", "/info", "/api/health", "/api/initial-message"})

# POST routes that only read.
_READ_POSTS = ("/search", "/count", "/history", "/namespaces", "/versions", "/state/checkpoint", "/stream/events")

# Thread-level streams and the protocol-v2 commands: the runs family.
_THREAD_STREAMS = ("/threads/{thread_id}/stream", "/threads/{thread_id}/stream/events", "/threads/{thread_id}/commands")


@lru_cache(maxsize=512)
def required_scope(method: str, template: str) -> str | None:
    """The scope a request needs; None for a public route. Unknown routes need `admin`."""
    if template in PUBLIC:
        return None
    if template.startswith("/runs/crons") or template.endswith("/runs/crons"):
        family = "crons"
    elif template.startswith("/assistants"):
        family = "assistants"
    elif template.startswith("/store"):
        family = "store"
    elif template == "/v1/models":
        return "assistants:read"
    elif template.startswith("/v1/"):
        return "runs:write"  # a chat completion starts a run
    elif template.endswith("/.well-known/agent-card.json"):
        return "assistants:read"  # an A2A agent card describes an assistant
    elif template == "/mcp" or template.startswith("/a2a/"):
        return "runs:write"  # a tool call or an agent message starts a run
    elif template.startswith("/runs") or "/runs" in template or template in _THREAD_STREAMS:
        family = "runs"
    elif template.startswith("/threads"):
        family = "threads"
    else:
        return "admin"  # /metrics and anything not classified: fail closed
    if family == "runs" and template.endswith("/cancel"):
        return "runs:cancel"
    reading = method in ("GET", "HEAD") or (method == "POST" and template.endswith(_READ_POSTS))
    return f"{family}:{'read' if reading else 'write'}"
