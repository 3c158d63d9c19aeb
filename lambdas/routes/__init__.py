"""REST API routes, one powertools Router per resource (SPEC §3)."""
