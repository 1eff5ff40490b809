"""Journeys, their versions and node kinds arrive with the journey-engine issue."""
