"""Scaling Kubernetes Deployments through the scale subresource, with the official ``kubernetes`` client.

The scaler reads ``deployments/<name>/scale`` first, so every result says "from N to M" and every revert
token remembers N. A dry run stops after that read: it sends no change. A real apply sends a merge patch
of ``spec.replicas`` carrying the resourceVersion it read, so a concurrent change makes the API server
answer 409 (retryable: read again and decide again) instead of being silently overwritten. A revert
refuses when the replicas have changed since the action, for the same reason.

Failures are sorted the way a controller needs them: 5xx, 429, 408, 409 and connection errors are
worth retrying; other 4xx (403 forbidden, 404 not found, 422 invalid) are not, and the detail carries the
API server's own message.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from opsmind.act.base import ActionResult, ReplicaBounds, ScaleAction, ScaleRevert, bad_token

RETRYABLE_STATUSES = frozenset({408, 409, 429})


def _api_message(exc: ApiException) -> str:
    """The API server's ``Status.message`` when the body is one, else the HTTP reason."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            data = json.loads(body)
        except ValueError:
            return body[:200]
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return str(data["message"])[:300]
    return str(exc.reason or "no reason given")


def classify_error(exc: BaseException) -> tuple[bool, str] | None:
    """``(retryable, why)`` for an error talking to the API server; None for anything else (a bug)."""
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        if status == 0:
            return False, f"request failed before reaching the API server: {exc.reason}"
        retryable = status >= 500 or status in RETRYABLE_STATUSES
        why = f"HTTP {status}: {_api_message(exc)}"
        retry_after = (exc.headers or {}).get("Retry-After") if status == 429 else None
        if retry_after:
            why += f" (Retry-After {retry_after} s)"
        return retryable, why
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        return True, f"cannot reach the API server: {type(exc).__name__}: {exc}"
    return None


def api_client_from_environment(
    kubeconfig: str | None = None, context: str | None = None
) -> client.ApiClient:
    """A client configured from the pod's service account when running in a cluster (and no
    ``kubeconfig`` is given), else from ``kubeconfig`` / ``$KUBECONFIG`` / ``~/.kube/config``. The
    client's global default configuration is left alone."""
    configuration = client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    return client.ApiClient(configuration)


class KubernetesScaler:
    """An ``Actuator`` for ``apps/v1`` Deployments over a given ``kubernetes.client.ApiClient``."""

    def __init__(
        self,
        api_client: client.ApiClient,
        bounds: ReplicaBounds | None = None,
        *,
        request_timeout_s: float = 10.0,
        field_manager: str = "opsmind",
    ) -> None:
        self.apps = client.AppsV1Api(api_client)
        self.bounds = bounds if bounds is not None else ReplicaBounds()
        self.request_timeout_s = request_timeout_s
        self.field_manager = field_manager

    @classmethod
    def from_environment(
        cls,
        bounds: ReplicaBounds | None = None,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        request_timeout_s: float = 10.0,
    ) -> KubernetesScaler:
        """Configured as :func:`api_client_from_environment` says."""
        return cls(
            api_client_from_environment(kubeconfig, context), bounds, request_timeout_s=request_timeout_s
        )

    # -- reading and writing the scale subresource --
    def _read(self, namespace: str, name: str) -> tuple[int, str | None]:
        scale: Any = self.apps.read_namespaced_deployment_scale(
            name, namespace, _request_timeout=self.request_timeout_s
        )
        replicas = scale.spec.replicas if scale.spec is not None else None
        version = scale.metadata.resource_version if scale.metadata is not None else None
        return int(replicas or 0), version

    def read_replicas(self, namespace: str, name: str) -> int:
        """The desired replicas of a Deployment now (API errors propagate as the client raises them)."""
        return self._read(namespace, name)[0]

    def _patch(self, namespace: str, name: str, replicas: int, resource_version: str | None) -> None:
        body: dict[str, Any] = {"spec": {"replicas": replicas}}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        self.apps.patch_namespaced_deployment_scale(
            name,
            namespace,
            body,
            field_manager=self.field_manager,
            _content_type="application/merge-patch+json",
            _request_timeout=self.request_timeout_s,
        )

    @staticmethod
    def _failed(step: str, target: str, exc: Exception, dry_run: bool) -> ActionResult:
        verdict = classify_error(exc)
        if verdict is None:
            raise exc
        retryable, why = verdict
        return ActionResult(False, retryable, f"{step} {target} failed: {why}", None, dry_run)

    # -- the Actuator protocol --
    def apply(self, action: ScaleAction, dry_run: bool = True) -> ActionResult:
        refusal = self.bounds.refusal(action)
        if refusal is not None:
            return replace(refusal, dry_run=dry_run)
        ns, name, target, n = action.namespace, action.name, action.target, action.replicas
        why = f" ({action.reason})" if action.reason else ""
        try:
            current, version = self._read(ns, name)
        except Exception as exc:  # classified; anything unknown is re-raised
            return self._failed("reading the scale of", target, exc, dry_run)
        if dry_run:
            return ActionResult(
                True,
                False,
                f"dry run: would scale {target} from {current} to {n}{why}; nothing sent",
                None,
                True,
            )
        token = ScaleRevert(ns, name, previous=current, applied=n).encode()
        if current == n:
            return ActionResult(True, False, f"{target} already has {n} replicas; nothing sent", token, False)
        try:
            self._patch(ns, name, n, version)
        except Exception as exc:
            return self._failed("scaling", target, exc, dry_run)
        return ActionResult(True, False, f"scaled {target} from {current} to {n}{why}", token, False)

    def revert(self, token: str, dry_run: bool = True) -> ActionResult:
        try:
            undo = ScaleRevert.decode(token)
        except ValueError as exc:
            return replace(bad_token(token, exc), dry_run=dry_run)
        action = undo.action()
        refusal = self.bounds.refusal(action)
        if refusal is not None:
            return replace(refusal, dry_run=dry_run)
        target = action.target
        try:
            current, version = self._read(undo.namespace, undo.name)
        except Exception as exc:
            return self._failed("reading the scale of", target, exc, dry_run)
        if current != undo.applied:
            return ActionResult(
                False,
                False,
                f"not reverting {target}: it has {current} replicas, not the {undo.applied} the action set; "
                "someone changed it since",
                None,
                dry_run,
            )
        if dry_run:
            return ActionResult(
                True, False, f"dry run: would revert {target} from {current} to {undo.previous}", None, True
            )
        redo = ScaleRevert(undo.namespace, undo.name, previous=current, applied=undo.previous).encode()
        if current != undo.previous:
            try:
                self._patch(undo.namespace, undo.name, undo.previous, version)
            except Exception as exc:
                return self._failed("reverting", target, exc, dry_run)
        return ActionResult(True, False, f"reverted {target} from {current} to {undo.previous}", redo, False)
