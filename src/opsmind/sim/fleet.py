"""The fleet and its step: pods come and go, load flows down the call graph, latency and errors flow
back up. One call of :meth:`Fleet.step` advances simulated time by ``resolution_s``.

Per step, in order: timed operations fall due (actions finishing, failovers, retrains), pods move
through their lifecycle (start-up, readiness, crash loops, OOM kills, lost nodes), replica counts are
reconciled, then two passes over the services: callers to dependencies for arrival rates, dependencies
to callers for latency and errors (a request holds its slot while it waits on its dependencies, so a
slow dependency makes its callers queue too).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from opsmind.sim.load import Load
from opsmind.sim.model import FleetEvent, ModelState, Node, Pod, ServiceState, Version
from opsmind.sim.queueing import mmc, timeout_fraction
from opsmind.sim.spec import Scenario

CACHE_TIMEOUT_S = 0.05  # clients give up on a hung cache quickly and read from the backing store
EVICTION_S = 300.0  # Kubernetes' default pod eviction timeout on a NotReady node
BACKOFF_MAX_S = 300.0  # CrashLoopBackOff caps at five minutes
NO_ENDPOINT_S = 0.001  # a call to a service without ready pods is refused at once


def _call_success(error_ratio: float, calls: float) -> float:
    """Share of requests whose ``calls`` calls (a mean, e.g. 0.3: three requests in ten make one) to a
    dependency failing ``error_ratio`` of the time all succeed."""
    whole = math.floor(calls)
    return (1.0 - error_ratio) ** whole * (1.0 - (calls - whole) * error_ratio)


def _pod_quantile(added: list[float], level: float) -> float:
    """How far a service's ``level`` quantile of latency moves when each ready pod adds its own time to
    the requests it serves (an equal share each): the same quantile of the per-pod additions. A few slow
    pods leave the median alone but set the tail."""
    if not added:
        return 0.0
    ranked = sorted(added, reverse=True)
    return ranked[min(len(ranked) - 1, int((1.0 - level) * len(ranked)))]


class Fleet:
    def __init__(self, scenario: Scenario, base_dir: Path | None = None) -> None:
        self.scenario = scenario
        self.dt = scenario.resolution_s
        self.t = 0.0  # seconds since scenario start
        seeds = np.random.SeedSequence(scenario.seed).spawn(3)
        self.rng = np.random.default_rng(seeds[0])  # fleet randomness (start-up jitter)
        self.action_rng = np.random.default_rng(seeds[1])  # action failures, kept apart from the load
        self.load = Load(scenario.load, np.random.default_rng(seeds[2]), base_dir)
        self.order = scenario.order()
        self.nodes = {
            f"node-{z}-{i}": Node(f"node-{z}-{i}", z)
            for z in scenario.nodes.zones
            for i in range(scenario.nodes.nodes_per_zone)
        }
        self.node_down_since: dict[str, float] = {}
        self.events: list[FleetEvent] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.entry_rps = 0.0
        # Traffic weights per zone at the entry (a zonal load balancer); None spreads over all ready pods.
        self.zone_weights: dict[str, float] | None = None
        self.services: dict[str, ServiceState] = {}
        for name in self.order:
            spec = scenario.services[name]
            svc = ServiceState(
                name=name,
                spec=spec,
                desired=spec.replicas,
                versions={spec.version: Version(spec.version)},
                version_history=[spec.version],
                pool_size=spec.pool_size,
                config={"log_level": "info", "feature_flags": "stable", "pool_size": str(spec.pool_size)},
                disk_used_gb=spec.disk_gb * spec.disk_used_ratio,
            )
            if spec.model is not None:
                svc.model = ModelState(
                    spec.model.version,
                    spec.model.accuracy,
                    spec.model.accuracy,
                    history=[(spec.model.version, spec.model.accuracy)],
                )
            self.services[name] = svc
            for _ in range(spec.replicas):
                pod = self.create_pod(svc)
                pod.ready, pod.ready_at = True, -1.0  # the fleet starts warm

    # -- time ------------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.scenario.start + self.t

    def after(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` once simulated time has moved ``delay`` seconds on (at the start of a step)."""
        heapq.heappush(self._timers, (self.t + delay, next(self._seq), fn))

    def emit(
        self, service: str | None, reason: str, message: str, pod: str | None = None, node: str | None = None
    ) -> None:
        self.events.append(FleetEvent(self.now, service, reason, message, pod, node))

    # -- pods --------------------------------------------------------------------------------------
    def create_pod(self, svc: ServiceState, version: str | None = None) -> Pod:
        node = self._pick_node(svc)
        svc.pod_seq += 1
        jitter = 1.0 + 0.2 * float(self.rng.random())
        v = svc.versions[version or svc.version.name]
        pod = Pod(
            name=f"{svc.name}-{svc.pod_seq}",
            node=node,
            version=v.name,
            started_at=self.t,
            ready_at=self.t + svc.spec.startup_s * jitter,
            memory_mb=svc.spec.memory_mb,
            generation=svc.generation,
        )
        svc.pods.append(pod)
        return pod

    def _pick_node(self, svc: ServiceState) -> str:
        """Spread a service's pods: the ready node with fewest of its pods, then fewest pods overall."""
        mine: dict[str, int] = {}
        total: dict[str, int] = {}
        for s in self.services.values():
            for p in s.pods:
                total[p.node] = total.get(p.node, 0) + 1
                if s is svc:
                    mine[p.node] = mine.get(p.node, 0) + 1
        ready = [n for n in self.nodes.values() if n.ready and not n.cordoned] or list(self.nodes.values())
        return min(ready, key=lambda n: (mine.get(n.name, 0), total.get(n.name, 0), n.name)).name

    def delete_pod(self, svc: ServiceState, pod: Pod) -> None:
        if pod in svc.pods:
            svc.pods.remove(pod)

    def _lifecycle(self) -> None:
        dt = self.dt
        for svc in self.services.values():
            for pod in list(svc.pods):
                node = self.nodes[pod.node]
                if not node.ready:
                    pod.ready = False
                    continue
                version = svc.versions[pod.version]
                if not pod.ready and self.t >= pod.ready_at:
                    if version.crashes_on_start:
                        pod.crashing = True
                        pod.restarts += 1
                        backoff = min(BACKOFF_MAX_S, 10.0 * 2 ** min(pod.restarts - 1, 5))
                        pod.ready_at = self.t + backoff + svc.spec.startup_s * 0.2
                        self.emit(
                            svc.name,
                            "BackOff",
                            f"Back-off restarting failed container in {pod.name}",
                            pod.name,
                            pod.node,
                        )
                    else:
                        pod.ready, pod.crashing = True, False
                if pod.ready and version.leak_mb_per_min > 0:
                    pod.memory_mb += version.leak_mb_per_min * dt / 60.0
                    if pod.memory_mb >= svc.spec.memory_limit_mb:
                        pod.restarts += 1
                        pod.ready, pod.memory_mb = False, svc.spec.memory_mb
                        pod.ready_at = self.t + svc.spec.startup_s * 0.5  # a container restart, not a new pod
                        self.emit(
                            svc.name,
                            "OOMKilled",
                            f"container of {pod.name} exceeded its memory limit",
                            pod.name,
                            pod.node,
                        )
            self._finish_rollouts(svc)
            self._reconcile(svc)
        for name, since in list(self.node_down_since.items()):
            if self.t - since >= EVICTION_S:
                self._evict_node(name)

    def _finish_rollouts(self, svc: ServiceState) -> None:
        """Rolling updates (max unavailable 0): pods of another version or generation leave while there
        are more pods than desired - those that are not ready at once, the ready ones only as far as
        enough other pods are ready to take their place."""
        current, gen = svc.version.name, svc.generation
        # Like a ReplicaSet scaling down: old pods that are not ready go first, then the newest.
        old = sorted(
            (p for p in svc.pods if p.version != current or p.generation != gen),
            key=lambda p: (p.ready, -p.started_at),
        )
        surplus = len(svc.pods) - svc.desired
        spare_ready = sum(1 for p in svc.pods if p.ready) - svc.desired
        for pod in old:
            if surplus <= 0 or (pod.ready and spare_ready <= 0):
                break
            self.delete_pod(svc, pod)
            surplus -= 1
            spare_ready -= pod.ready

    def _reconcile(self, svc: ServiceState) -> None:
        """Keep ``desired`` pods of the current version and generation (old ones are the rollout's)."""
        current = [p for p in svc.pods if p.version == svc.version.name and p.generation == svc.generation]
        # Pods on a NotReady node still count until they are evicted, as in Kubernetes.
        missing = svc.desired - len(current)
        for _ in range(max(0, missing)):
            self.create_pod(svc)
        if missing < 0:
            # Scale-down removes the pods that serve least first: not ready, then newest.
            for pod in sorted(current, key=lambda p: (p.ready, -p.started_at))[:-missing]:
                self.delete_pod(svc, pod)

    def _evict_node(self, name: str) -> None:
        for svc in self.services.values():
            for pod in [p for p in svc.pods if p.node == name]:
                self.delete_pod(svc, pod)
                self.emit(
                    svc.name, "Evicted", f"{pod.name} evicted from NotReady node {name}", pod.name, name
                )
        self.node_down_since.pop(name, None)

    def rollout(self, svc: ServiceState, version: str, restart: bool = False) -> None:
        """Start a rolling update to ``version`` (``restart``: same version, fresh pods): one new pod per
        desired replica; old pods leave as the new ones become ready (see :meth:`_finish_rollouts`)."""
        if svc.version_history[-1] != version:
            svc.version_history.append(version)
        if restart:
            svc.generation += 1
        for _ in range(svc.desired):
            self.create_pod(svc, version)

    # -- the step ----------------------------------------------------------------------------------
    def step(self) -> None:
        self.t += self.dt
        while self._timers and self._timers[0][0] <= self.t:
            _, _, fn = heapq.heappop(self._timers)
            fn()
        self._lifecycle()
        self._slow_changes()
        self._arrivals()
        self._latency_and_errors()

    def _slow_changes(self) -> None:
        dt = self.dt
        for svc in self.services.values():
            if svc.disk_growth_gb_per_s and svc.spec.disk_gb:
                svc.disk_used_gb = min(svc.spec.disk_gb, svc.disk_used_gb + svc.disk_growth_gb_per_s * dt)
            m = svc.model
            if m is not None and m.decay_per_s:
                m.accuracy = max(0.5, m.accuracy - m.decay_per_s * dt)

    def _arrivals(self) -> None:
        self.entry_rps = self.load.rps(self.t, self.scenario.start, self.dt)
        arrivals = dict.fromkeys(self.services, 0.0)
        arrivals[self.scenario.load.entry] = self.entry_rps
        for svc in self.services.values():
            if svc.spec.jobs_per_request:  # workers are fed by a queue of jobs the entry's requests create
                arrivals[svc.name] += self.entry_rps * svc.spec.jobs_per_request
        for name in self.order:
            svc = self.services[name]
            # A dead primary or a service without ready pods refuses requests before doing any work.
            lam = 0.0 if svc.down or not svc.ready_pods else arrivals[name]
            svc.arrival_rps = arrivals[name]
            for dep, calls in self._effective_calls(svc).items():
                arrivals[dep] += lam * calls

    def _effective_calls(self, svc: ServiceState) -> dict[str, float]:
        calls = dict(svc.spec.calls)
        cache = svc.spec.cache
        if cache is not None:
            reads = calls.get(cache.via, 1.0)
            calls[cache.via] = reads
            via = self.services[cache.via]
            hit = 0.0 if via.hung or self.t < via.cache_cold_until else cache.hit_ratio
            calls[cache.backing] = calls.get(cache.backing, 0.0) + reads * (1.0 - hit)
        return calls

    def _latency_and_errors(self) -> None:
        for name in reversed(self.order):
            self._service_step(self.services[name])

    def _service_step(self, svc: ServiceState) -> None:
        spec = svc.spec
        lam = svc.arrival_rps
        ready = svc.ready_pods
        if svc.down or (svc.hung and spec.kind == "cache"):
            # A dead primary refuses connections at once; a hung cache answers nothing until clients time out.
            svc.served_rps, svc.utilisation, svc.pool_in_use = 0.0, 0.0, 0.0
            svc.own_error_ratio = svc.error_ratio = 1.0 if lam > 0 or svc.down else 0.0
            lat = CACHE_TIMEOUT_S if svc.hung else NO_ENDPOINT_S
            svc.p50_s = svc.p95_s = svc.p99_s = lat
            for pod in svc.pods:
                pod.cpu_utilisation = 0.02
            return
        # Time on dependencies, holding this service's slot and one pooled connection.
        dep_p50, dep_tail, dep_ok = 0.0, 0.0, 1.0
        cache_via = spec.cache.via if spec.cache else None
        for dep, calls in self._effective_calls(svc).items():
            d = self.services[dep]
            dep_p50 += calls * d.p50_s
            dep_tail = max(dep_tail, d.p99_s - d.p50_s)
            if dep != cache_via:  # cache errors fall back to the backing store, they do not fail the request
                dep_ok *= _call_success(d.error_ratio, calls)
        version_error, slowdown = self._version_mix(svc, ready)
        steal = [self.nodes[p.node].cpu_steal for p in ready]
        own_s = spec.service_time_ms / 1000.0 * slowdown
        # A noisy neighbour takes CPU: a pod there serves fewer requests at once (capacity) and each of
        # them takes longer (latency, below).
        slots = sum(max(1, round(spec.concurrency * (1.0 - s))) for s in steal)
        hold_s = own_s + dep_p50
        timeout = spec.timeout_ms / 1000.0
        if spec.kind == "worker":
            # A job holds a slot for its own time, any injected delay and its dependency calls; it fails
            # like a request does (its version, a bad config, no pooled connection, its dependencies).
            extra = sum(p.extra_latency_s for p in ready) / len(ready) if ready else 0.0
            hold_s += extra
            q = mmc(lam, slots, own_s + extra, math.inf, dep_p50)
            capacity = slots / hold_s if slots else 0.0
            svc.queue_depth = max(0.0, svc.queue_depth + (lam - capacity) * self.dt)
            wait = svc.queue_depth / capacity if capacity else math.inf
            svc.served_rps = min(lam, capacity) if svc.queue_depth == 0 else capacity
            svc.p50_s, svc.p95_s, svc.p99_s = (min(wait + hold_s * k, 86_400.0) for k in (0.69, 3.0, 4.6))
            pool_err = self._pool(svc, ready, svc.served_rps, dep_p50)
            ok = (1.0 - spec.base_error_rate) * (1.0 - version_error) * (1.0 - svc.config_error_rate())
            ok *= 1.0 - pool_err
            svc.utilisation, svc.own_error_ratio = min(1.0, q.utilisation), 1.0 - ok
            svc.error_ratio = 1.0 - ok * dep_ok
            self._pods_cpu(svc, ready, lam, own_s)
            return
        q = mmc(lam, slots, own_s, timeout, dep_p50)
        stretch = [1.0 / max(0.05, 1.0 - s) - 1.0 for s in steal]
        slowed = any(stretch) or any(p.extra_latency_s for p in ready)

        def added(level: float) -> float:
            if not slowed:
                return 0.0
            z = -math.log(1.0 - level)  # the level's quantile of an exponential own time, in means
            adds = [own_s * k * z + p.extra_latency_s for k, p in zip(stretch, ready, strict=True)]
            return _pod_quantile(adds, level)

        p50 = min(timeout, q.p50_s + added(0.5))
        p95 = min(timeout, q.p95_s + added(0.95))
        p99 = min(timeout, q.p99_s + added(0.99) + dep_tail)
        # Pool: connections busy = request rate x dependency time (Little's law) plus leaked ones. A pod
        # whose pool is used up fails the requests it is sent (each ready pod gets an equal share).
        pool_err = self._pool(svc, ready, lam, dep_p50)
        if pool_err > 0:
            p50, p95, p99 = (min(timeout, x + timeout * pool_err) for x in (p50, p95, p99))
        disk_err = 0.0
        if spec.disk_gb:
            used = svc.disk_used_gb / spec.disk_gb
            disk_err = 0.8 if used >= 0.999 else max(0.0, (used - 0.95) / 0.05 * 0.5)
        ok = (1.0 - spec.base_error_rate) * (1.0 - version_error) * (1.0 - svc.config_error_rate())
        ok *= (1.0 - (q.overflow_rps / lam if lam > 0 else 0.0)) * (1.0 - timeout_fraction(p50, p99, timeout))
        ok *= (1.0 - pool_err) * (1.0 - disk_err)
        if self.zone_weights is not None and svc.name == self.scenario.load.entry:
            # A zonal load balancer keeps sending a zone its share even when no pod there is ready.
            zones_ready = {self.nodes[p.node].zone for p in ready}
            total = sum(self.zone_weights.values()) or 1.0
            ok *= 1.0 - sum(w for z, w in self.zone_weights.items() if z not in zones_ready) / total
        svc.own_error_ratio = 1.0 - ok
        svc.error_ratio = 1.0 - ok * dep_ok if lam > 0 or ready else 1.0
        if not ready:
            # No ready pod, no endpoint: connections are refused at once, nothing waits for a timeout.
            svc.error_ratio = svc.own_error_ratio = 1.0
            p50 = p95 = p99 = NO_ENDPOINT_S
        svc.served_rps, svc.utilisation = q.served_rps, min(q.utilisation, 10.0)
        svc.p50_s, svc.p95_s, svc.p99_s = p50, p95, p99
        self._pods_cpu(svc, ready, lam, own_s)

    @staticmethod
    def _pool(svc: ServiceState, ready: list[Pod], lam: float, dep_p50: float) -> float:
        """Share of requests failed for want of a pooled connection, and ``svc.pool_in_use`` set:
        connections busy = request rate x dependency time (Little's law) plus leaked ones. A pod whose
        pool is used up fails the requests it is sent (each ready pod gets an equal share)."""
        if not ready:
            svc.pool_in_use = 0.0
            return 0.0
        needed = lam / len(ready) * dep_p50
        free = [max(0.0, svc.pool_size - p.leaked_connections) for p in ready]
        pool_errs = [0.0 if needed <= avail else 1.0 - avail / needed for avail in free]
        in_use = [min(float(svc.pool_size), needed + p.leaked_connections) for p in ready]
        svc.pool_in_use = sum(in_use) / len(ready)
        return sum(pool_errs) / len(ready)

    @staticmethod
    def _version_mix(svc: ServiceState, ready: list[Pod]) -> tuple[float, float]:
        """Error rate and slowdown of what actually serves: the versions of the ready pods, each pod
        taking an equal share of the traffic (during a rollout old and new versions serve side by side)."""
        if not ready:
            v = svc.version
            return v.error_rate, v.slowdown
        versions = [svc.versions[p.version] for p in ready]
        n = len(versions)
        return sum(v.error_rate for v in versions) / n, sum(v.slowdown for v in versions) / n

    def _pods_cpu(self, svc: ServiceState, ready: list[Pod], lam: float, own_s: float) -> None:
        per_pod = lam / len(ready) if ready else 0.0
        for pod in svc.pods:
            if not pod.ready:
                pod.cpu_utilisation = 0.3 if self.t - pod.started_at < svc.spec.startup_s else 0.02
                continue
            steal = self.nodes[pod.node].cpu_steal
            busy = per_pod * own_s / (svc.spec.concurrency * max(0.05, 1.0 - steal))
            pod.cpu_utilisation = min(1.0, 0.05 + busy + steal)

    # -- summaries the observer and the ground truth use --------------------------------------------
    def cost_per_hour(self, svc: ServiceState) -> float:
        return len(svc.pods) * svc.spec.instance.price_per_hour
