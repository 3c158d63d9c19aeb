"""Approval steps: the request (notifier), its delivery (email links, Slack, inbox) and the decisions."""
