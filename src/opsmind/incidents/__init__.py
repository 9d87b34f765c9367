"""Incidents: group anomalies into incidents with a lifecycle."""
