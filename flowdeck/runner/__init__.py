"""The runner: pool workers that take step messages and supervise each step's process."""
