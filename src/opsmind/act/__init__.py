"""Actuators: carry a decided action out on a target (the simulator, Kubernetes), dry-run by default,
bounded, and reversible where the target allows."""
