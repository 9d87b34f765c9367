"""Operators' feedback in the running pipeline: after operators marked incidents, a new incident like
those marked noise opens with its priority down-ranked and the reason in its explanation, and its
notification is muted by the noise muter (audited); nothing is delivered."""

from __future__ import annotations

import random
import time
from pathlib import Path

from opsmind.engine import Engine
from opsmind.incidents.feedback import incident_features
from opsmind.notify.stage import RetryPolicy
from opsmind.types import Anomaly, AuditEntry, Feedback, Incident
from tests.engine.test_pipeline import Collect, settings, wait_for
from tests.incidents.test_feedback import synthetic


def cpu_anomaly(service: str, ts: float) -> Anomaly:
    return Anomaly(
        at=ts,
        service=service,
        series=f'cpu_utilisation{{service="{service}"}}',
        ts=ts,
        value=0.97,
        score=3.5,
        probability=0.9997,
        detector="test",
    )


def past_feedback(engine: Engine, rng: random.Random, n: int = 20) -> None:
    for noisy in [True, False] * n:
        inc = synthetic(rng, noisy)
        verdict = "noise" if noisy else "actionable"
        engine.store.put(
            Feedback(at=0.0, incident_id=inc.id, verdict=verdict, by="ana", features=incident_features(inc))
        )


async def test_noise_like_incident_is_down_ranked_and_muted(tmp_path: Path) -> None:
    collect = Collect()
    engine = Engine(
        settings(tmp_path, notify={"group_wait_s": 0, "flush_interval_s": 0.05}),
        notifiers=[(collect, RetryPolicy(0, 0.01))],
    )
    past_feedback(engine, random.Random(3))
    await engine.start()  # retrains the noise classifier from the stored verdicts
    try:
        assert engine.noise.ready
        now = time.time()
        await engine.ingest_anomalies([cpu_anomaly("batch", now + i) for i in range(3)], "test")
        await wait_for(lambda: bool(engine.store.find(Incident)))
        inc = engine.store.find(Incident)[0]
        noise = inc.priority_explanation["noise"]
        assert noise["action"] == "suppress" and noise["probability"] >= 0.9, noise
        assert inc.priority < sum(
            v["points"]
            for k, v in inc.priority_explanation.items()
            if k in ("severity", "blast_radius", "slo_impact", "criticality")
        )

        def muted() -> bool:
            return any(
                e.verb == "mute" and e.detail.get("muter") == "noise" for e in engine.store.find(AuditEntry)
            )

        await wait_for(muted)
        assert collect.events == []
    finally:
        await engine.stop()
