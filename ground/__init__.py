"""The ground floor every package stands on (the harness, data sets, strategies and reports):
the one user-facing error type and atomic file writes. It imports nothing of the project."""
