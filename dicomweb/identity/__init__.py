"""Who the caller is and what they may do: OIDC bearer tokens, roles and permissions (no HTTP)."""
