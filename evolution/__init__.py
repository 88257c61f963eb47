"""Everything that speaks Evolution API: the HTTP client, JID rules and the sandbox server."""
