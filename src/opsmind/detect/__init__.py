"""Detection: score every sample, emit anomalies. One detector per module."""
