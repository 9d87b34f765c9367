"""Decisions as pure functions returning (value, reasons), with controllers that hold state and clock:
the Kubernetes HPA baseline, the predictive scaling policy, and cost-aware placement."""
