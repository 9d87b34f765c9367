"""What the fleet exposes, as a real one would: golden signals per service, resources per pod, model
quality for ML services. Never the faults themselves.

Measurements carry a little noise (their own seeded stream, so observing does not change the fleet).
Series are built once per (metric, labels) and reused, so a step costs one float per series.
"""

from __future__ import annotations

import numpy as np

from opsmind.sim.fleet import Fleet
from opsmind.types import Series

MB = 1024.0 * 1024.0


class Observer:
    def __init__(self, fleet: Fleet, seed: int, noise: float = 0.02) -> None:
        self.fleet = fleet
        self.rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])
        self.noise = noise
        self._series: dict[tuple[str, str, str | None, str | None], Series] = {}

    def _s(
        self,
        metric: str,
        service: str,
        pod: str | None = None,
        node: str | None = None,
        quantile: str | None = None,
    ) -> Series:
        key = (metric, service, pod, quantile)
        s = self._series.get(key)
        if s is None:
            labels = {"service": service, "job": "opsmind-sim"}
            if pod is not None:
                labels["pod"] = pod
            if node is not None:
                labels["node"] = node
            if quantile is not None:
                labels["quantile"] = quantile
            s = self._series[key] = Series.of(metric, labels)
        return s

    def collect(self) -> list[tuple[Series, float]]:
        """Every series' value at the current step, in a fixed order (services in topology order)."""
        fleet = self.fleet
        out: list[tuple[Series, float]] = []
        jitter = self.rng.standard_normal(8 * len(fleet.services)) * self.noise
        j = 0
        for name in fleet.order:
            svc = fleet.services[name]
            spec = svc.spec
            ready = svc.ready_pods
            n = (1.0 + jitter[j : j + 5]).tolist()
            j += 8
            add = out.append
            add((self._s("request_rate", name), max(0.0, svc.arrival_rps * n[0])))
            add((self._s("error_ratio", name), min(1.0, max(0.0, svc.error_ratio * n[1]))))
            add((self._s("latency_seconds", name, quantile="0.5"), svc.p50_s * n[2]))
            add((self._s("latency_seconds", name, quantile="0.95"), svc.p95_s * n[3]))
            add((self._s("latency_seconds", name, quantile="0.99"), svc.p99_s * n[4]))
            add((self._s("replicas_desired", name), float(svc.desired)))
            add((self._s("replicas_ready", name), float(len(ready))))
            cpu = sum(p.cpu_utilisation for p in ready) / len(ready) if ready else 0.0
            add((self._s("cpu_utilisation", name), cpu))
            add((self._s("pool_in_use_ratio", name), svc.pool_in_use / svc.pool_size))
            add((self._s("cost_per_hour_dollars", name), fleet.cost_per_hour(svc)))
            if spec.kind == "worker":
                add((self._s("queue_depth", name), svc.queue_depth))
            if spec.disk_gb:
                add((self._s("disk_used_ratio", name), svc.disk_used_gb / spec.disk_gb))
            if svc.model is not None:
                m = svc.model
                add((self._s("model_accuracy", name), m.accuracy))
                add(
                    (
                        self._s("model_drift_score", name),
                        min(1.0, max(0.0, (m.baseline_accuracy - m.accuracy) / 0.2)),
                    )
                )
            for pod in svc.pods:
                add((self._s("pod_ready", name, pod.name, pod.node), 1.0 if pod.ready else 0.0))
                add((self._s("pod_cpu_utilisation", name, pod.name, pod.node), pod.cpu_utilisation))
                add((self._s("pod_memory_bytes", name, pod.name, pod.node), pod.memory_mb * MB))
                add((self._s("pod_restarts_total", name, pod.name, pod.node), float(pod.restarts)))
        return out
