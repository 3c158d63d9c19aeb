"""The live view (SPEC §4): frames, the service that delivers them, the @connections poster."""
