"""Thin AWS Lambda handlers: parse the event, call the core, shape the answer."""
