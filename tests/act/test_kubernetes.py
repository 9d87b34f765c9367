"""KubernetesScaler against kmock's Kubernetes emulator over real HTTP, with the official client.

kmock's emulator keeps objects as plain JSON and has no separate Scale kind: a GET of
``deployments/<name>/scale`` answers with the Deployment itself and a PATCH of it merges into the
Deployment. The client reads ``spec.replicas`` from either, and merging ``spec.replicas`` is what a
real API server does to the Deployment, so the round trip is the real one except for the response's
``kind``. Errors are injected as kmock reactions (status, headers, a ``Status`` body); note that
the emulator records an intercepted PATCH on the stored object anyway, so tests of write failures
assert the answer, not the stored state.

The kmock fixture serves from the test's event loop, and the kubernetes client is synchronous, so each
call runs in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import pytest
from kmock import KubernetesError
from kubernetes import client

from opsmind.act.base import ActionResult, Actuator, ReplicaBounds, ScaleAction
from opsmind.act.kubernetes import KubernetesScaler

SCALE = "/apis/apps/v1/namespaces/shop/deployments/web/scale"


def _deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas},
    }


def _error(code: int, message: str) -> KubernetesError:
    """kmock answers a raised KubernetesError with a ``Status`` body and that HTTP status."""
    return KubernetesError(status=code, reason="Injected", message=message)


@pytest.fixture()
def cluster(kmock: Any) -> Any:
    kmock.objects[kmock.resource("apps", "v1", "deployments"), "shop", "web"] = _deployment(3)
    return kmock


def _scaler(kmock: Any, bounds: ReplicaBounds | None = None) -> KubernetesScaler:
    configuration = client.Configuration(host=str(kmock.url).rstrip("/"))
    return KubernetesScaler(client.ApiClient(configuration), bounds, request_timeout_s=5)


def _replicas(kmock: Any) -> int:
    return int(kmock.objects[kmock.resource("apps", "v1", "deployments"), "shop", "web"]["spec"]["replicas"])


async def _apply(scaler: KubernetesScaler, replicas: int, dry_run: bool, name: str = "web") -> ActionResult:
    return await asyncio.to_thread(
        scaler.apply, ScaleAction("shop", name, replicas, "load forecast"), dry_run
    )


async def test_reads_and_patches_the_scale_subresource(cluster: Any) -> None:
    scaler = _scaler(cluster)
    assert isinstance(scaler, Actuator)
    assert await asyncio.to_thread(scaler.read_replicas, "shop", "web") == 3
    result = await _apply(scaler, 5, dry_run=False)
    assert result.ok and not result.dry_run and result.revert_token
    assert result.detail == "scaled shop/web from 3 to 5 (load forecast)"
    assert _replicas(cluster) == 5
    patches = cluster["patch"]
    assert len(patches) == 1
    assert patches[0].url.path == SCALE
    assert patches[0].headers["Content-Type"] == "application/merge-patch+json"
    assert patches[0].data == {"spec": {"replicas": 5}}


async def test_dry_run_is_the_default_and_sends_no_change(cluster: Any) -> None:
    scaler = _scaler(cluster)
    result = await asyncio.to_thread(scaler.apply, ScaleAction("shop", "web", 7))
    assert result.ok and result.dry_run and result.revert_token is None
    assert result.detail == "dry run: would scale shop/web from 3 to 7; nothing sent"
    assert _replicas(cluster) == 3
    assert len(cluster["patch"]) == 0 and len(cluster["get"]) == 1  # one read, no write


async def test_revert_restores_the_previous_replicas(cluster: Any) -> None:
    scaler = _scaler(cluster)
    applied = await _apply(scaler, 6, dry_run=False)
    assert applied.revert_token is not None
    dry = await asyncio.to_thread(scaler.revert, applied.revert_token)
    assert dry.ok and dry.dry_run and _replicas(cluster) == 6
    reverted = await asyncio.to_thread(scaler.revert, applied.revert_token, False)
    assert reverted.ok and reverted.detail == "reverted shop/web from 6 to 3"
    assert _replicas(cluster) == 3
    # The revert's own token redoes the action.
    assert reverted.revert_token is not None
    assert (await asyncio.to_thread(scaler.revert, reverted.revert_token, False)).ok
    assert _replicas(cluster) == 6


async def test_revert_refuses_when_someone_changed_the_replicas_since(cluster: Any) -> None:
    scaler = _scaler(cluster)
    applied = await _apply(scaler, 6, dry_run=False)
    assert (await _apply(scaler, 9, dry_run=False)).ok  # another writer
    assert applied.revert_token is not None
    result = await asyncio.to_thread(scaler.revert, applied.revert_token, False)
    assert not result.ok and not result.retryable and "someone changed it since" in result.detail
    assert _replicas(cluster) == 9


async def test_bad_revert_token_is_refused(cluster: Any) -> None:
    result = await asyncio.to_thread(_scaler(cluster).revert, "not a token", False)
    assert not result.ok and not result.retryable and "not a revert token" in result.detail
    assert len(cluster) == 0


async def test_missing_deployment_is_not_retryable(cluster: Any) -> None:
    result = await _apply(_scaler(cluster), 4, dry_run=False, name="ghost")
    assert not result.ok and not result.retryable
    assert result.detail.startswith("reading the scale of shop/ghost failed: HTTP 404")


async def test_server_errors_and_throttling_are_retryable(cluster: Any) -> None:
    cluster["get", SCALE] << _error(503, "etcd leader changed")
    result = await _apply(_scaler(cluster), 4, dry_run=True)
    assert not result.ok and result.retryable
    assert result.detail == "reading the scale of shop/web failed: HTTP 503: etcd leader changed"


async def test_throttled_patch_is_retryable_and_says_when(kmock: Any) -> None:
    kmock.objects[kmock.resource("apps", "v1", "deployments"), "shop", "web"] = _deployment(3)
    # A raised KubernetesError carries no headers, so this answer is put together from its parts.
    status = {"apiVersion": "v1", "kind": "Status", "code": 429, "message": "too many requests"}
    kmock["patch", SCALE] << 429 << {"Retry-After": "2"} << status
    result = await _apply(_scaler(kmock), 4, dry_run=False)
    assert not result.ok and result.retryable
    assert "HTTP 429: too many requests (Retry-After 2 s)" in result.detail


@pytest.mark.parametrize(("status", "message"), [(403, "forbidden: no scale rights"), (422, "invalid value")])
async def test_client_errors_on_patch_are_not_retryable(kmock: Any, status: int, message: str) -> None:
    kmock.objects[kmock.resource("apps", "v1", "deployments"), "shop", "web"] = _deployment(3)
    kmock["patch", SCALE] << _error(status, message)
    result = await _apply(_scaler(kmock), 4, dry_run=False)
    assert not result.ok and not result.retryable
    assert result.detail == f"scaling shop/web failed: HTTP {status}: {message}"


async def test_unreachable_api_server_is_retryable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    configuration = client.Configuration(host=f"http://127.0.0.1:{port}")
    configuration.retries = 0
    scaler = KubernetesScaler(client.ApiClient(configuration), request_timeout_s=2)
    result = await asyncio.to_thread(scaler.apply, ScaleAction("shop", "web", 4), False)
    assert not result.ok and result.retryable and "cannot reach the API server" in result.detail


@pytest.mark.parametrize("replicas", [0, 11])
async def test_bounds_are_refused_before_any_request(cluster: Any, replicas: int) -> None:
    scaler = _scaler(cluster, ReplicaBounds(min_replicas=1, max_replicas=10))
    result = await _apply(scaler, replicas, dry_run=False)
    assert not result.ok and not result.retryable and "outside the bounds 1..10" in result.detail
    assert len(cluster) == 0 and _replicas(cluster) == 3


@pytest.mark.kubernetes
@pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="KUBECONFIG is not set: no real cluster")
def test_real_cluster_read_and_dry_run() -> None:
    """Against a real cluster: reads and dry-runs ``OPSMIND_K8S_DEPLOYMENT`` (``namespace/name``,
    default ``kube-system/coredns``). With ``OPSMIND_K8S_ALLOW_WRITE=1`` it also scales it by one and
    reverts."""
    namespace, name = os.environ.get("OPSMIND_K8S_DEPLOYMENT", "kube-system/coredns").split("/", 1)
    scaler = KubernetesScaler.from_environment(ReplicaBounds(0, 1000))
    current = scaler.read_replicas(namespace, name)
    dry = scaler.apply(ScaleAction(namespace, name, current + 1))
    assert dry.ok and dry.dry_run and f"from {current} to {current + 1}" in dry.detail
    assert scaler.read_replicas(namespace, name) == current
    if os.environ.get("OPSMIND_K8S_ALLOW_WRITE") == "1":
        applied = scaler.apply(ScaleAction(namespace, name, current + 1), dry_run=False)
        assert applied.ok and applied.revert_token is not None
        assert scaler.read_replicas(namespace, name) == current + 1
        assert scaler.revert(applied.revert_token, dry_run=False).ok
        assert scaler.read_replicas(namespace, name) == current
