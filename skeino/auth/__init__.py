"""Who is calling and what they may do: API keys and scopes, rate limits, the audit trail."""
