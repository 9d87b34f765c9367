"""KubernetesRemediator against kmock's Kubernetes emulator over real HTTP, with the official client.

What the emulator does not do, and how these tests stand in for it:

- It has no controllers. A rollout restart or undo only changes the Deployment object here; no
  ReplicaSet is created and no revision is renumbered. The ReplicaSets are written into the emulator by
  the tests, with the ``ownerReferences`` and ``deployment.kubernetes.io/revision`` annotations the
  Deployment controller would have given them.
- It ignores ``labelSelector`` on lists: every ReplicaSet of the namespace comes back. The remediator
  filters by the controller ``ownerReference``'s UID anyway (as kubectl does after its selector list),
  so the fixture includes a ReplicaSet with the same labels, owned by another Deployment, with a higher
  revision, which must never be picked.
- Its PATCH merges JSON as RFC 7386 says (null removes a key), which is what the remediator's merge patch
  asks of a real API server; it does not check ``metadata.resourceVersion`` preconditions, nor a DELETE's
  UID precondition, so the tests assert that they are sent.
- It records an intercepted write on the stored object anyway, so tests of write failures assert the
  answer, not the stored state.

The kmock fixture serves from the test's event loop and the client is synchronous, so every call runs in
a worker thread.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import pytest
from kmock import KubernetesError
from kubernetes import client

from opsmind.act.base import ActionResult, Actuator, ScaleAction
from opsmind.act.kubernetes_remediate import RESTARTED_AT, KubernetesRemediator, merge_patch

DEPLOYMENT = "/apis/apps/v1/namespaces/shop/deployments/web"
REPLICASETS = "/apis/apps/v1/namespaces/shop/replicasets"
POD = "/api/v1/namespaces/shop/pods/web-2222-abcde"
NOW = 1_700_000_000.0
STAMP = "2023-11-14T22:13:20Z"


def _template(image: str, hash_: str | None = None, extra: bool = False) -> dict[str, Any]:
    labels = {"app": "web"} | ({"pod-template-hash": hash_} if hash_ else {})
    container: dict[str, Any] = {"name": "web", "image": image}
    meta: dict[str, Any] = {"labels": labels}
    if extra:
        container["env"] = [{"name": "FEATURE", "value": "on"}]
        meta["annotations"] = {"prometheus.io/scrape": "true"}
    return {"metadata": meta, "spec": {"containers": [container]}}


def _rs(name: str, revision: int, template: dict[str, Any], owner_uid: str = "uid-web") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": template["metadata"]["labels"],
            "annotations": {
                "deployment.kubernetes.io/revision": str(revision),
                "kubernetes.io/change-cause": f"release {revision}",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "web",
                    "uid": owner_uid,
                    "controller": True,
                }
            ],
        },
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": template},
    }


def _deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "uid-web",
            "resourceVersion": "41",
            "annotations": {
                "deployment.kubernetes.io/revision": "2",
                "kubernetes.io/change-cause": "release 2",
            },
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": _template("web:2", extra=True),
        },
    }


def _pod(owned: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web-2222-abcde", "namespace": "shop", "uid": "uid-pod"}
    if owned:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-2222",
                "uid": "uid-rs2",
                "controller": True,
            }
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": _template("web:2")["spec"]}


def _error(code: int, message: str) -> KubernetesError:
    return KubernetesError(status=code, reason="Injected", message=message)


def _deployments(kmock: Any) -> Any:
    return kmock.resource("apps", "v1", "deployments")


def _replicasets(kmock: Any) -> Any:
    return kmock.resource("apps", "v1", "replicasets")


def _pods(kmock: Any) -> Any:
    return kmock.resource("", "v1", "pods")


@pytest.fixture()
def cluster(kmock: Any) -> Any:
    kmock.objects[_deployments(kmock), "shop", "web"] = _deployment()
    kmock.objects[_replicasets(kmock), "shop", "web-1111"] = _rs("web-1111", 1, _template("web:1", "1111"))
    kmock.objects[_replicasets(kmock), "shop", "web-2222"] = _rs(
        "web-2222", 2, _template("web:2", "2222", True)
    )
    # Same labels, a higher revision, but another Deployment's: never a candidate.
    kmock.objects[_replicasets(kmock), "shop", "impostor-9"] = _rs(
        "impostor-9", 9, _template("evil:1"), "uid-other"
    )
    kmock.objects[_pods(kmock), "shop", "web-2222-abcde"] = _pod()
    return kmock


def _remediator(kmock: Any) -> KubernetesRemediator:
    configuration = client.Configuration(host=str(kmock.url).rstrip("/"))
    return KubernetesRemediator(client.ApiClient(configuration), request_timeout_s=5, clock=lambda: NOW)


def _stored(kmock: Any) -> dict[str, Any]:
    return dict(copy.deepcopy(kmock.objects[_deployments(kmock), "shop", "web"].raw))


def _edit(kmock: Any, change: Callable[[dict[str, Any]], object]) -> None:
    """Change the stored Deployment as another writer would (a new version of the whole object)."""
    obj = _stored(kmock)
    change(obj)
    kmock.objects[_deployments(kmock), "shop", "web"] = obj


async def _run(fn: Callable[..., ActionResult], *args: Any, **kwargs: Any) -> ActionResult:
    return await asyncio.to_thread(fn, *args, **kwargs)


def test_merge_patch_sets_nulls_for_removed_keys_and_replaces_lists() -> None:
    current = {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]}
    target = {"a": 1, "b": {"c": 5}, "l": [1], "n": {"x": 1}}
    assert merge_patch(current, target) == {"b": {"c": 5, "d": None}, "l": [1], "n": {"x": 1}}
    assert merge_patch(target, target) == {}


# -- rollout restart ------------------------------------------------------------------------------------
async def test_restart_annotates_the_pod_template_like_kubectl(cluster: Any) -> None:
    result = await _run(_remediator(cluster).rollout_restart, "shop", "web", False)
    assert result.ok and not result.dry_run and result.revert_token is None
    assert result.detail.startswith(f"restarted shop/web: pod template annotated {RESTARTED_AT}={STAMP}")
    assert "no revert token" in result.detail
    template = _stored(cluster)["spec"]["template"]
    assert template["metadata"]["annotations"] == {"prometheus.io/scrape": "true", RESTARTED_AT: STAMP}
    assert template["spec"] == _template("web:2", extra=True)["spec"]  # nothing else touched
    (patch,) = cluster["patch"]
    assert patch.url.path == DEPLOYMENT
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert patch.data == {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: STAMP}}}}}


async def test_restart_dry_run_is_the_default_and_writes_nothing(cluster: Any) -> None:
    before = _stored(cluster)
    result = await _run(_remediator(cluster).rollout_restart, "shop", "web")
    assert result.ok and result.dry_run
    assert result.detail == f"dry run: would restart shop/web ({RESTARTED_AT}={STAMP}); nothing sent"
    assert _stored(cluster) == before and len(cluster["patch"]) == 0


async def test_restart_of_a_paused_deployment_is_refused(cluster: Any) -> None:
    _edit(cluster, lambda d: d["spec"].update(paused=True))
    result = await _run(_remediator(cluster).rollout_restart, "shop", "web", False)
    assert not result.ok and not result.retryable and "paused" in result.detail
    assert len(cluster["patch"]) == 0


# -- rollout undo ---------------------------------------------------------------------------------------
async def test_undo_restores_the_previous_replicaset_template_and_reverts(cluster: Any) -> None:
    remediator = _remediator(cluster)
    result = await _run(remediator.rollout_undo, "shop", "web", None, False)
    assert result.ok and not result.dry_run, result.detail
    assert result.detail == (
        "rolled back shop/web to revision 1 (ReplicaSet web-1111); revert returns to ReplicaSet web-2222"
    )
    stored = _stored(cluster)
    assert stored["spec"]["template"] == _template("web:1")  # no hash label, no leftover env or annotation
    assert stored["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "2",  # kept from the Deployment, as kubectl does
        "kubernetes.io/change-cause": "release 1",  # copied from the ReplicaSet
    }
    (patch,) = cluster["patch"]
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert patch.data["metadata"]["resourceVersion"] == "41"
    assert patch.data["spec"]["template"]["metadata"]["annotations"] is None
    assert len(cluster["get", REPLICASETS]) == 1

    # Undo of the undo: back to the revision before, and its own token redoes it.
    assert result.revert_token is not None
    dry = await _run(remediator.revert, result.revert_token)
    assert dry.ok and dry.dry_run and _stored(cluster)["spec"]["template"] == _template("web:1")
    reverted = await _run(remediator.revert, result.revert_token, False)
    assert reverted.ok, reverted.detail
    assert reverted.detail.startswith("reverted shop/web to revision 2 (ReplicaSet web-2222)")
    assert _stored(cluster)["spec"]["template"] == _template("web:2", extra=True)
    assert reverted.revert_token is not None
    assert (await _run(remediator.revert, reverted.revert_token, False)).ok
    assert _stored(cluster)["spec"]["template"] == _template("web:1")


async def test_undo_to_a_named_revision_and_to_one_that_does_not_exist(cluster: Any) -> None:
    remediator = _remediator(cluster)
    same = await _run(remediator.rollout_undo, "shop", "web", 2, False)
    assert same.ok and same.detail == (
        "shop/web already runs the template of revision 2 (ReplicaSet web-2222); nothing sent"
    )
    missing = await _run(remediator.rollout_undo, "shop", "web", 7, False)
    assert not missing.ok and not missing.retryable
    assert missing.detail == "undoing shop/web refused: revision 7 is not in its history (revisions: 1, 2)"
    assert len(cluster["patch"]) == 0


async def test_undo_without_history_is_a_clear_permanent_error(cluster: Any) -> None:
    cluster.objects[_replicasets(cluster), "shop", "web-1111"].delete()
    result = await _run(_remediator(cluster).rollout_undo, "shop", "web", None, False)
    assert not result.ok and not result.retryable and result.revert_token is None
    assert result.detail == (
        "undoing shop/web refused: no previous revision to roll back to (1 ReplicaSet revision owned by it)"
    )
    assert len(cluster["patch"]) == 0


async def test_undo_dry_run_reads_but_writes_nothing(cluster: Any) -> None:
    before = _stored(cluster)
    result = await _run(_remediator(cluster).rollout_undo, "shop", "web")
    assert result.ok and result.dry_run and result.revert_token is None
    assert (
        result.detail == "dry run: would roll shop/web back to revision 1 (ReplicaSet web-1111); nothing sent"
    )
    assert _stored(cluster) == before and len(cluster["patch"]) == 0


async def test_revert_refuses_when_the_deployment_moved_on(cluster: Any) -> None:
    remediator = _remediator(cluster)
    result = await _run(remediator.rollout_undo, "shop", "web", None, False)
    assert result.revert_token is not None
    _edit(cluster, lambda d: d["spec"].update(template=_template("web:3")))
    reverted = await _run(remediator.revert, result.revert_token, False)
    assert not reverted.ok and not reverted.retryable and "someone changed it since" in reverted.detail
    assert _stored(cluster)["spec"]["template"] == _template("web:3")


async def test_bad_revert_token_is_refused(cluster: Any) -> None:
    result = await _run(_remediator(cluster).revert, '{"kind": "restart"}', False)
    assert not result.ok and not result.retryable and "not a rollout undo revert token" in result.detail
    assert len(cluster) == 0


# -- delete a pod ---------------------------------------------------------------------------------------
async def test_delete_pod_deletes_it_with_a_uid_precondition(cluster: Any) -> None:
    result = await _run(_remediator(cluster).delete_pod, "shop", "web-2222-abcde", False)
    assert result.ok and not result.dry_run and result.revert_token is None
    assert result.detail == (
        "deleted pod shop/web-2222-abcde (its ReplicaSet web-2222 replaces it); "
        "no revert token: a deleted pod cannot be restored"
    )
    assert cluster.objects[_pods(cluster), "shop", "web-2222-abcde"].deleted
    (delete,) = cluster["delete"]
    assert delete.url.path == POD
    assert delete.data["preconditions"] == {"uid": "uid-pod"}


async def test_delete_pod_dry_run_keeps_it(cluster: Any) -> None:
    result = await _run(_remediator(cluster).delete_pod, "shop", "web-2222-abcde")
    assert (
        result.ok
        and result.dry_run
        and result.detail.startswith("dry run: would delete pod shop/web-2222-abcde")
    )
    assert not cluster.objects[_pods(cluster), "shop", "web-2222-abcde"].deleted
    assert len(cluster["delete"]) == 0


async def test_delete_of_a_pod_no_controller_owns_is_refused_unless_allowed(cluster: Any) -> None:
    cluster.objects[_pods(cluster), "shop", "web-2222-abcde"] = _pod(owned=False)
    remediator = _remediator(cluster)
    refused = await _run(remediator.delete_pod, "shop", "web-2222-abcde", False)
    assert not refused.ok and not refused.retryable and "nothing would recreate it" in refused.detail
    assert len(cluster["delete"]) == 0
    allowed = await _run(remediator.delete_pod, "shop", "web-2222-abcde", False, require_controller=False)
    assert allowed.ok and "nothing will recreate it" in allowed.detail


# -- scale, through the scaler ------------------------------------------------------------------------------
async def test_scale_goes_through_the_scaler_and_reverts(cluster: Any) -> None:
    remediator = _remediator(cluster)
    assert isinstance(remediator, Actuator)
    result = await _run(remediator.scale, "shop", "web", 5, False, "spike")
    assert result.ok and result.detail == "scaled shop/web from 3 to 5 (spike)"
    assert result.revert_token is not None
    assert (await _run(remediator.revert, result.revert_token, False)).ok
    assert _stored(cluster)["spec"]["replicas"] == 3
    assert (await _run(remediator.apply, ScaleAction("shop", "web", 4))).dry_run


# -- errors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "prefix"),
    [
        (lambda r: r.rollout_restart("shop", "ghost", False), "restarting shop/ghost failed: HTTP 404"),
        (lambda r: r.rollout_undo("shop", "ghost", None, False), "undoing shop/ghost failed: HTTP 404"),
        (lambda r: r.delete_pod("shop", "ghost", False), "deleting pod shop/ghost failed: HTTP 404"),
    ],
)
async def test_missing_objects_are_permanent_failures(
    cluster: Any, call: Callable[[KubernetesRemediator], ActionResult], prefix: str
) -> None:
    result = await asyncio.to_thread(call, _remediator(cluster))
    assert not result.ok and not result.retryable and result.detail.startswith(prefix), result.detail


async def test_unavailable_api_server_is_retryable(cluster: Any) -> None:
    cluster["get", REPLICASETS] << _error(503, "etcd leader changed")
    result = await _run(_remediator(cluster).rollout_undo, "shop", "web", None, False)
    assert not result.ok and result.retryable
    assert result.detail == "undoing shop/web failed: HTTP 503: etcd leader changed"


async def test_throttled_write_is_retryable_and_says_when(cluster: Any) -> None:
    status = {"apiVersion": "v1", "kind": "Status", "code": 429, "message": "too many requests"}
    cluster["patch", DEPLOYMENT] << 429 << {"Retry-After": "3"} << status
    result = await _run(_remediator(cluster).rollout_restart, "shop", "web", False)
    assert not result.ok and result.retryable
    assert result.detail == "restarting shop/web failed: HTTP 429: too many requests (Retry-After 3 s)"


async def test_conflicting_delete_is_retryable(cluster: Any) -> None:
    cluster["delete", POD] << _error(409, "Precondition failed: UID in precondition: uid-pod")
    conflict = await _run(_remediator(cluster).delete_pod, "shop", "web-2222-abcde", False)
    assert not conflict.ok and conflict.retryable and "HTTP 409" in conflict.detail


async def test_forbidden_write_is_not_retryable(cluster: Any) -> None:
    cluster["patch", DEPLOYMENT] << _error(403, "forbidden: cannot patch deployments")
    result = await _run(_remediator(cluster).rollout_undo, "shop", "web", None, False)
    assert not result.ok and not result.retryable
    assert result.detail == "undoing shop/web failed: HTTP 403: forbidden: cannot patch deployments"
