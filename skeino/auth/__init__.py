"""Who is calling and what they may do: custom auth, API keys and scopes, rate limits, the audit trail."""
