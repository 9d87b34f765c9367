"""Predictions: load forecasts per service, the week-ahead capacity outlook, and recommendations."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, HTTPException

from opsmind.api.deps import EngineDep
from opsmind.predict.capacity import CapacityModel
from opsmind.predict.slo import BurnReport
from opsmind.predict.stage import ServiceView
from opsmind.predict.track_record import TrackRecord

router = APIRouter(prefix="/api/v1", tags=["prediction"])


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _nums(xs: Any) -> list[float | None]:
    return [_num(x) for x in xs]


def _capacity(m: CapacityModel | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {
        "ok": m.ok,
        "reason": m.reason,
        "latency_slo": _num(m.latency_slo),
        "capacity_per_replica": _num(m.capacity_per_replica),
        "saturation_per_replica": _num(m.saturation_per_replica),
        "capacity_interval": [_num(m.capacity_lo), _num(m.capacity_hi)],
        "base_latency": _num(m.base_latency),
        "samples": m.n_samples,
    }


@router.get("/forecasts/{service:label}", responses={404: {"description": "service not followed"}})
async def get_forecast(service: str, engine: EngineDep) -> dict[str, Any]:
    """The service's load forecast (mean and interval bounds per step, and the model that made it), with
    its capacity model, bottleneck warnings and SLO burn report."""
    try:
        v: ServiceView = engine.forecast_view(service)
    except LookupError as exc:
        raise HTTPException(404, str(exc).strip("'\"")) from exc
    fc = v.forecast
    forecast = None
    if fc is not None:
        n = len(fc.mean)
        forecast = {
            "model": fc.model,
            "start": v.forecast_start,
            "step_s": v.step_s,
            "timestamps": [v.forecast_start + v.step_s * (i + 1) for i in range(n)],
            "mean": _nums(fc.mean),
            "lo": {str(k): _nums(x) for k, x in fc.lo.items()},
            "hi": {str(k): _nums(x) for k, x in fc.hi.items()},
        }
    return {
        "service": service,
        "updated_at": v.updated_at,
        "replicas": v.replicas,
        "forecast": forecast,
        "capacity": _capacity(v.capacity),
        "warnings": [
            {
                "kind": w.kind,
                "at": w.at,
                "lead_s": w.lead_s,
                "probability": w.probability,
                "imminent": w.imminent,
                "evidence": w.evidence,
            }
            for w in v.warnings
        ],
        "slo": _slo(v.burn),
        "warning_track_record": _track_record(v.track_record, v.step_s),
        "notes": v.notes,
    }


def _slo(r: BurnReport | None) -> dict[str, Any] | None:
    """The burn report as the API shows it: every figure read from the report, none recomputed here.
    ``window_burn`` has only the windows the data fully cover (a 3-day burn from an hour of data is no
    3-day burn); ``windows`` has all of them with how much of each is covered and the burn over that."""
    if r is None:
        return None
    b = r.budget
    exhausted = r.exhausted_in_s
    return {
        "objective": b.slo.objective,
        "period_s": b.slo.period_s,
        "severity": r.severity,
        "error_ratio": _num(b.error_ratio),
        "budget_covered_s": _num(b.covered_s),
        "budget_spent": _num(b.spent),
        "budget_remaining": _num(b.remaining),
        # At the top alert's long-window burn, the rate the incident reports; null without an alert.
        "budget_exhausted_in_s": None if exhausted is None else _num(exhausted),
        "window_burn": {f"{k:g}s": _num(x) for k, x in r.window_burn.items()},
        "windows": [
            {
                "window_s": w.length_s,
                "covered_s": _num(w.covered_s),
                "complete": w.complete,
                "burn_over_covered": _num(w.burn),
            }
            for w in sorted(r.windows.values(), key=lambda w: w.length_s)
        ],
        "alerts": [a.reason for a in r.alerts],
    }


def _track_record(r: TrackRecord | None, step_s: float) -> dict[str, Any] | None:
    """How the service's latency-SLO warnings have fared since the engine started following it."""
    if r is None:
        return None
    return {
        "warnings": r.warnings,
        "came_true": r.came_true,
        "precision": r.precision,
        "breaches": r.breaches,
        "warned_of": r.warned_of,
        "recall": r.recall,
        "median_lead_steps": r.median_lead_minutes,
        "summary": r.summary(step_s),
    }


@router.get("/capacity")
async def get_capacity(engine: EngineDep) -> list[dict[str, Any]]:
    """Per followed service, the 7-day capacity outlook: daily peaks, headroom at the replica ceiling and
    the first time the forecast's upper bound passes it; tightest headroom first."""
    out = []
    for v in engine.prediction_views():
        o = v.outlook
        row: dict[str, Any] = {"service": v.service, "capacity": _capacity(v.capacity), "outlook": None}
        if o is not None:
            row["outlook"] = {
                "model": o.model,
                "level": o.level,
                "ceiling": _num(o.ceiling),
                "capacity_per_replica": _num(o.capacity_per_replica),
                "min_replicas": o.min_replicas,
                "max_replicas": o.max_replicas,
                "headroom": _num(o.headroom),
                "first_exhaustion_at": o.first_exceed_at,
                "days": [
                    {
                        "day_start": d.day_start,
                        "peak_at": d.at,
                        "mean": _num(d.mean),
                        "upper": _num(d.upper),
                        "replicas_needed": d.replicas_needed,
                        "headroom": _num(d.headroom),
                    }
                    for d in o.days
                ],
            }
        else:
            row["reason"] = v.notes.get("outlook", "not computed yet")
        out.append(row)
    return sorted(out, key=lambda r: (r["outlook"] is None, (r["outlook"] or {}).get("headroom") or 0.0))


@router.get("/recommendations")
async def list_recommendations(engine: EngineDep) -> list[dict[str, Any]]:
    """Capacity and cost recommendations, highest priority first, each with its expected effect."""
    return [
        {
            "service": r.service,
            "kind": r.kind,
            "action": r.action,
            "priority": r.priority,
            "expected_effect": r.expected_effect,
            "reasons": list(r.reasons),
            "details": dict(r.details),
        }
        for r in engine.recommendations()
    ]
