"""skeino: a self-hostable agent server that speaks the LangGraph Platform HTTP API."""

__version__ = "0.1.0"
