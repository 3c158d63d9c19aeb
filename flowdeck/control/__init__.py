"""Run control: cancel, pause and step decisions, retry, concurrency (SPEC §3 run endpoints)."""
