"""The embedded local stack: the AWS emulator, bootstrap, workers and the HTTP server on one machine."""
