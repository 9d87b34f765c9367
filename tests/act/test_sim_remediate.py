"""SimulatorRemediator against the real simulator's default fleet: scale by factor, add or replicas with
the max_replicas cap and a revert token that restores the count; refusals are non-retryable; a dry run
answers ok and sends nothing; a restart is accepted and recorded; a bad revert token is refused."""

from __future__ import annotations

from typing import Any

import pytest

from opsmind.act.sim_remediate import SCALE_TOKEN, SimulatorRemediator
from opsmind.sim.actions import DELAYS_S
from opsmind.sim.runner import SimRun, default_scenario


def _world() -> tuple[SimRun, SimulatorRemediator]:
    run = SimRun(default_scenario(duration_s=600))
    for _ in range(3):
        run.step()
    return run, SimulatorRemediator(run.actuator)


def _advance(run: SimRun, seconds: float) -> None:
    end = run.fleet.t + seconds
    while run.fleet.t < end:
        run.step()


def _settle(run: SimRun) -> None:
    """Long enough for a scale or restart to take effect."""
    _advance(run, max(DELAYS_S["scale"], DELAYS_S["restart"]) + run.scenario.resolution_s)


def test_scale_by_factor_takes_effect_and_its_revert_token_restores_the_count() -> None:
    run, remediate = _world()
    auth = run.fleet.services["auth"]
    before = auth.desired
    reply = remediate("scale", {"service": "auth", "factor": 2, "max_replicas": 50}, False)
    assert reply.ok and not reply.retryable and not reply.dry_run
    assert reply.revert_token == f"{SCALE_TOKEN}auth:{before}"
    assert "scale accepted" in reply.detail
    assert [(a, p) for _, a, p in remediate.sent] == [("scale", {"service": "auth", "replicas": 2 * before})]
    assert remediate.sent[0][0] == run.fleet.now
    _settle(run)
    assert auth.desired == 2 * before
    assert set(run.actuator.outcomes.values()) == {"succeeded"}

    undo = remediate("revert", {"revert_token": reply.revert_token}, False)
    assert undo.ok and not undo.dry_run
    assert undo.revert_token == f"{SCALE_TOKEN}auth:{2 * before}"  # the revert can itself be reverted
    assert remediate.sent[-1][1:] == ("scale", {"service": "auth", "replicas": before})
    _settle(run)
    assert auth.desired == before


def test_scale_by_add_by_replicas_and_the_max_replicas_cap() -> None:
    run, remediate = _world()
    gateway = run.fleet.services["gateway"]
    before = gateway.desired
    cases: list[tuple[dict[str, Any], int]] = [
        ({"add": 2}, before + 2),
        ({"replicas": 9}, 9),
        ({"factor": 3, "max_replicas": before + 1}, before + 1),  # capped
        ({"add": 10, "max_replicas": 4}, 4),
        ({"replicas": 0}, 1),  # never below one replica
        ({"factor": 1.5}, -(-before * 3 // 2)),  # rounded up
    ]
    for extra, want in cases:
        reply = remediate("scale", {"service": "gateway", **extra}, False)
        assert reply.ok, reply.detail
        assert remediate.sent[-1][2] == {"service": "gateway", "replicas": want}, extra
        # the token holds the desired count when the action was sent: nothing has taken effect yet
        assert reply.revert_token == f"{SCALE_TOKEN}gateway:{before}"
    _settle(run)
    assert gateway.desired == cases[-1][1]  # the last scale took effect last


def test_unknown_service_is_refused_non_retryable() -> None:
    run, remediate = _world()
    refused: list[tuple[str, dict[str, Any]]] = [
        ("scale", {"service": "nope", "factor": 2}),
        ("restart", {"service": "nope"}),
        ("rollback", {"service": "nope"}),
    ]
    for action, params in refused:
        reply = remediate(action, params, False)
        assert not reply.ok and not reply.retryable, action
        assert "unknown service 'nope'" in reply.detail
        assert reply.revert_token is None
    assert remediate.sent == [] and run.actuator.outcomes == {}


def test_other_refusals_are_non_retryable_with_the_simulators_reason() -> None:
    run, remediate = _world()
    reply = remediate("rollback", {"service": "auth"}, False)  # only one version so far
    assert not reply.ok and not reply.retryable and "no previous version" in reply.detail
    reply = remediate("scale", {"service": "auth", "factor": "lots"}, False)
    assert not reply.ok and not reply.retryable and "bad scale parameters" in reply.detail
    reply = remediate("restart", {"service": "auth", "pod": "auth-nope"}, False)
    assert not reply.ok and not reply.retryable and "has no pod" in reply.detail
    assert remediate.sent == [] and run.actuator.outcomes == {}


def test_dry_run_answers_ok_and_sends_nothing() -> None:
    run, remediate = _world()
    auth = run.fleet.services["auth"]
    before = auth.desired
    scale = remediate("scale", {"service": "auth", "factor": 2}, True)
    assert scale.ok and scale.dry_run and not scale.retryable
    assert scale.detail.startswith("would send scale")
    assert scale.revert_token == f"{SCALE_TOKEN}auth:{before}"
    restart = remediate("restart", {"service": "auth"}, True)
    assert restart.ok and restart.dry_run and restart.revert_token is None
    revert = remediate("revert", {"revert_token": f"{SCALE_TOKEN}auth:1"}, True)
    assert revert.ok and revert.dry_run
    assert remediate.sent == [] and run.actuator.outcomes == {}
    _settle(run)
    assert auth.desired == before and run.actuator.outcomes == {}


def test_restart_is_accepted_recorded_and_carried_out() -> None:
    run, remediate = _world()
    reply = remediate("restart", {"service": "auth"}, False)
    assert reply.ok and not reply.dry_run and not reply.retryable
    assert reply.revert_token is None  # a restart cannot be undone
    assert "restart accepted" in reply.detail
    assert [(a, p) for _, a, p in remediate.sent] == [("restart", {"service": "auth"})]
    action_id = reply.detail.split(":", 1)[0]
    assert run.actuator.outcomes == {action_id: "pending"}
    _settle(run)
    assert run.actuator.outcomes == {action_id: "succeeded"}


@pytest.mark.parametrize(
    "token",
    ["", "undo:restart", "scale:auth:", "scale:auth:many", "scale:auth:-1", "kube:default/auth:3"],
)
def test_bad_revert_token_is_refused(token: str) -> None:
    run, remediate = _world()
    for dry_run in (False, True):
        reply = remediate("revert", {"revert_token": token}, dry_run)
        assert not reply.ok and not reply.retryable, token
        assert "cannot revert" in reply.detail
    assert remediate("revert", {}, False).ok is False  # no token at all
    assert remediate.sent == [] and run.actuator.outcomes == {}


def test_revert_of_a_scale_on_an_unknown_service_is_refused() -> None:
    run, remediate = _world()
    reply = remediate("revert", {"revert_token": f"{SCALE_TOKEN}gone:3"}, False)
    assert not reply.ok and not reply.retryable and "unknown service 'gone'" in reply.detail
    assert remediate.sent == []
