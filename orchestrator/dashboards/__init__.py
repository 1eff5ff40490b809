"""The cadence dashboard for the unified messaging team (issue 7)."""
