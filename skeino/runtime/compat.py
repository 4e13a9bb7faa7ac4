"""Features that depend on the installed LangGraph version.

skeino supports a range of LangGraph releases; a request option that needs a newer one
is refused (501) rather than accepted and ignored.
"""

from __future__ import annotations

try:  # strict resume: LangGraph checks a resume against the pending interrupts
    from langgraph._internal._constants import CONFIG_KEY_STRICT_RESUME
    from langgraph.errors import UnknownInterruptError
except ImportError:  # pragma: no cover - depends on the installed LangGraph
    CONFIG_KEY_STRICT_RESUME = None  # type: ignore[assignment]
    UnknownInterruptError = None  # type: ignore[assignment,misc]

STRICT_RESUME = CONFIG_KEY_STRICT_RESUME is not None and UnknownInterruptError is not None


def is_unknown_interrupt(exc: BaseException | None) -> bool:
    """True for a strict resume that named no pending interrupt (the thread is unchanged)."""
    return UnknownInterruptError is not None and isinstance(exc, UnknownInterruptError)
