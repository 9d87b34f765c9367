"""Self-healing: classify an incident's fault kind, choose a runbook by what has worked, run it step by
step under safety guards with verification and rollback, and learn from the outcome."""
