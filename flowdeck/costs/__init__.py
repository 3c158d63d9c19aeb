"""Cost tracking core: usage models, pricing calculators and trend analysis (no AWS imports)."""
