"""Storage: samples (raw + rollups, with retention) and events, behind backend-neutral protocols."""
