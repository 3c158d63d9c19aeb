"""Stand-ins for third-party services the tests talk to over HTTP."""
