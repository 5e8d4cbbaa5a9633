"""Core Lightning over its JSON-RPC unix socket (pyln-client)."""
