"""Notifications: deliver incident events to the log and to webhooks."""
