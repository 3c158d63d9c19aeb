"""Flowdeck core: workflow definitions, run records, stores, runner and the local stack."""

__version__ = "0.1.0"
