"""The `flowdeck` command line: typer commands over the REST API (SPEC §5)."""
