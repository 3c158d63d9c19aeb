"""Triggers: signed webhooks, GitHub pushes, schedules and events, and their delivery history."""
