"""Adapters to AWS data services; each takes an optional boto3 client so tests hand one in."""
