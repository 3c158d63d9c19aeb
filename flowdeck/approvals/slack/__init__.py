"""Slack approvals: Block Kit (blocks), the Web API and its secret (client), signed clicks (interactions)."""
