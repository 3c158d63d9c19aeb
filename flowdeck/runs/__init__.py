"""A run's read side: what the API answers about runs."""
