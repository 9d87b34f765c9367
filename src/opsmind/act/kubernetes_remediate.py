"""Remediating Kubernetes Deployments the way ``kubectl`` does: rollout restart, rollout undo, delete a pod,
and scale (through :class:`~opsmind.act.kubernetes.KubernetesScaler`).

Every method reads first and answers an ``ActionResult``; ``dry_run`` (the default) stops after the reads,
so it also finds a missing Deployment or an empty history, and sends no write. Errors are classified as
the scaler classifies them (:func:`~opsmind.act.kubernetes.classify_error`): 5xx, 408, 409, 429 and
connection errors are retryable, any other 4xx is not.

- ``rollout_restart`` merges ``kubectl.kubernetes.io/restartedAt: <RFC 3339 now>`` into the pod template's
  annotations, as ``kubectl rollout restart`` does; the Deployment controller then replaces every pod.
  A restart cannot be undone, so it has no revert token.
- ``rollout_undo`` does what ``kubectl rollout undo`` does, since ``apps/v1`` has no rollback endpoint:
  list the ReplicaSets the Deployment controls (its selector, then the controller ``ownerReference``'s
  UID), take the one with the previous ``deployment.kubernetes.io/revision`` (or ``to_revision``), drop its
  ``pod-template-hash`` label and write its pod template and its annotations into the Deployment. kubectl
  sends a JSON patch replacing ``/spec/template``; this sends the equivalent JSON merge patch (every key
  of the old template set, every key the target lacks set to null) carrying the resourceVersion it read,
  so a concurrent change gets a 409 instead of being overwritten. The revert token names the ReplicaSets
  by name (the controller renumbers the revision of the one rolled back to, but never renames it), so
  reverting an undo rolls back to the ReplicaSet that was current before, and refuses if the Deployment
  has moved on since.
- ``delete_pod`` deletes a pod with a UID precondition (the pod it read, not a namesake created since);
  by default only a pod a controller will replace. A deleted pod cannot be brought back: no revert token.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from opsmind.act.base import ActionResult, ReplicaBounds, ScaleAction, bad_token
from opsmind.act.kubernetes import KubernetesScaler, classify_error

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"
# Annotations ``kubectl rollout undo`` keeps from the Deployment rather than copying from the ReplicaSet.
ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
NO_REVERT = "no revert token"


class _Refused(Exception):
    """A non-retryable refusal found while reading (no history, paused, not owned...)."""


def merge_patch(current: Mapping[str, Any], target: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 JSON merge patch that turns ``current`` into ``target`` (null removes a key; lists
    and scalars are replaced whole). Empty when they are equal."""
    patch: dict[str, Any] = {key: None for key in current if key not in target}
    for key, value in target.items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            sub = merge_patch(old, value)
            if sub:
                patch[key] = sub
        elif key not in current or old != value:
            patch[key] = copy.deepcopy(value)
    return patch


def _without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(template))
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    return out


def _revision(obj: Mapping[str, Any]) -> int | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _template(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``spec.template`` without its ``pod-template-hash`` label (what kubectl compares and restores)."""
    return _without_hash((obj.get("spec") or {}).get("template") or {})


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


def _selector(deployment: Mapping[str, Any]) -> str | None:
    """The Deployment's ``matchLabels`` as a label selector (``matchExpressions`` are not translated: the
    ownerReference filter decides anyway)."""
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None


@dataclass(frozen=True, slots=True)
class UndoRevert:
    """What an undo's revert token holds: the ReplicaSet current before the undo and the one it restored."""

    namespace: str
    name: str
    previous_rs: str
    applied_rs: str

    def encode(self) -> str:
        data = {"kind": "rollout_undo", "namespace": self.namespace, "name": self.name}
        data |= {"previous_rs": self.previous_rs, "applied_rs": self.applied_rs}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def decode(cls, token: str) -> UndoRevert:
        try:
            data = json.loads(token)
        except (TypeError, ValueError):
            raise ValueError("not a revert token (not JSON)") from None
        if not isinstance(data, dict) or data.get("kind") != "rollout_undo":
            raise ValueError("not a rollout undo revert token")
        fields = [data.get(k) for k in ("namespace", "name", "previous_rs", "applied_rs")]
        strings = [v for v in fields if isinstance(v, str) and v]
        if len(strings) != len(fields):
            raise ValueError("revert token lacks its Deployment or ReplicaSets")
        return cls(*strings)


def token_kind(token: str) -> str | None:
    """The ``kind`` a revert token declares, or None when it is not one."""
    try:
        data = json.loads(token)
    except (TypeError, ValueError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


class KubernetesRemediator:
    """Rollout restart / undo, pod deletion and scaling of ``apps/v1`` Deployments; also an ``Actuator``
    for scale actions (``apply``) and a reverter of its own tokens (``revert``)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        bounds: ReplicaBounds | None = None,
        *,
        request_timeout_s: float = 10.0,
        field_manager: str = "opsmind",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.scaler = KubernetesScaler(
            api_client, bounds, request_timeout_s=request_timeout_s, field_manager=field_manager
        )
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.request_timeout_s = request_timeout_s
        self.field_manager = field_manager
        self.clock = clock

    @classmethod
    def from_environment(
        cls,
        bounds: ReplicaBounds | None = None,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        request_timeout_s: float = 10.0,
    ) -> KubernetesRemediator:
        """Configured as :meth:`KubernetesScaler.from_environment` is (in-cluster, else kubeconfig)."""
        scaler = KubernetesScaler.from_environment(
            bounds, kubeconfig=kubeconfig, context=context, request_timeout_s=request_timeout_s
        )
        return cls(scaler.apps.api_client, bounds, request_timeout_s=request_timeout_s)

    # -- raw reads and writes (plain JSON: no model validation of what the server sends) --
    @staticmethod
    def _json(response: Any) -> dict[str, Any]:
        data = json.loads(response.data or b"{}")
        return data if isinstance(data, dict) else {}

    def _deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return self._json(
            self.apps.read_namespaced_deployment(
                name, namespace, _preload_content=False, _request_timeout=self.request_timeout_s
            )
        )

    def _patch_deployment(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.apps.patch_namespaced_deployment(
            name,
            namespace,
            body,
            field_manager=self.field_manager,
            _content_type="application/merge-patch+json",
            _preload_content=False,
            _request_timeout=self.request_timeout_s,
        )

    def _owned_replica_sets(self, namespace: str, deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The ReplicaSets whose controller is ``deployment`` (by UID; by name when it has no UID)."""
        meta = deployment.get("metadata") or {}
        uid, name = meta.get("uid"), meta.get("name")
        selector = _selector(deployment)
        kwargs: dict[str, Any] = {"label_selector": selector} if selector else {}
        listing = self._json(
            self.apps.list_namespaced_replica_set(
                namespace, _preload_content=False, _request_timeout=self.request_timeout_s, **kwargs
            )
        )
        owned = []
        for rs in listing.get("items") or []:
            for ref in (rs.get("metadata") or {}).get("ownerReferences") or []:
                if ref.get("controller") and ref.get("kind") == "Deployment":
                    if (ref.get("uid") == uid) if uid else (ref.get("name") == name):
                        owned.append(rs)
                        break
        return owned

    @staticmethod
    def _failed(step: str, target: str, exc: Exception, dry_run: bool) -> ActionResult:
        if isinstance(exc, _Refused):
            return ActionResult(False, False, f"{step} {target} refused: {exc}", None, dry_run)
        verdict = classify_error(exc)
        if verdict is None:
            raise exc
        retryable, why = verdict
        return ActionResult(False, retryable, f"{step} {target} failed: {why}", None, dry_run)

    # -- scale (the scaler's, unchanged) --
    def scale(
        self, namespace: str, deployment: str, replicas: int, dry_run: bool = True, reason: str = ""
    ) -> ActionResult:
        return self.scaler.apply(ScaleAction(namespace, deployment, replicas, reason), dry_run)

    def apply(self, action: ScaleAction, dry_run: bool = True) -> ActionResult:
        return self.scaler.apply(action, dry_run)

    # -- rollout restart --
    def rollout_restart(self, namespace: str, deployment: str, dry_run: bool = True) -> ActionResult:
        target = f"{namespace}/{deployment}"
        try:
            current = self._deployment(namespace, deployment)
            if (current.get("spec") or {}).get("paused"):
                raise _Refused(
                    "the Deployment is paused; resume it first (a paused rollout restarts nothing)"
                )
        except Exception as exc:  # classified; anything unknown is re-raised
            return self._failed("restarting", target, exc, dry_run)
        stamp = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if dry_run:
            return ActionResult(
                True,
                False,
                f"dry run: would restart {target} ({RESTARTED_AT}={stamp}); nothing sent",
                None,
                True,
            )
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        try:
            self._patch_deployment(namespace, deployment, body)
        except Exception as exc:
            return self._failed("restarting", target, exc, dry_run)
        detail = (
            f"restarted {target}: pod template annotated {RESTARTED_AT}={stamp}; "
            f"{NO_REVERT}: a restart replaces the pods and cannot be undone"
        )
        return ActionResult(True, False, detail, None, False)

    # -- rollout undo --
    def rollout_undo(
        self, namespace: str, deployment: str, to_revision: int | None = None, dry_run: bool = True
    ) -> ActionResult:
        """Roll the Deployment's pod template back to ``to_revision``, by default the previous one."""
        target = f"{namespace}/{deployment}"
        if to_revision is not None and (isinstance(to_revision, bool) or to_revision < 1):
            return ActionResult(
                False, False, f"undoing {target} refused: bad revision {to_revision!r}", None, dry_run
            )
        try:
            current = self._deployment(namespace, deployment)
            owned = self._owned_replica_sets(namespace, current)
            wanted = self._pick_revision(owned, to_revision)
        except Exception as exc:
            return self._failed("undoing", target, exc, dry_run)
        return self._roll_to(namespace, deployment, current, owned, wanted, dry_run, "rolled back", "undoing")

    @staticmethod
    def _pick_revision(owned: list[dict[str, Any]], to_revision: int | None) -> dict[str, Any]:
        numbered = sorted(((r, rs) for rs in owned if (r := _revision(rs)) is not None), key=lambda p: p[0])
        if to_revision is not None:
            for revision, rs in numbered:
                if revision == to_revision:
                    return rs
            known = ", ".join(str(r) for r, _ in numbered) or "none"
            raise _Refused(f"revision {to_revision} is not in its history (revisions: {known})")
        if len(numbered) < 2:
            raise _Refused(
                "no previous revision to roll back to "
                f"({len(numbered)} ReplicaSet revision{'s' if len(numbered) != 1 else ''} owned by it)"
            )
        return numbered[-2][1]

    def _roll_to(
        self,
        namespace: str,
        deployment: str,
        current: dict[str, Any],
        owned: list[dict[str, Any]],
        wanted: dict[str, Any],
        dry_run: bool,
        verb: str,
        step: str,
    ) -> ActionResult:
        target = f"{namespace}/{deployment}"
        revision = _revision(wanted)
        where = f"revision {revision} (ReplicaSet {_name(wanted)})"
        template = (current.get("spec") or {}).get("template") or {}
        wanted_template = _template(wanted)
        if (current.get("spec") or {}).get("paused"):
            return ActionResult(
                False,
                False,
                f"{step} {target} refused: the Deployment is paused; resume it first",
                None,
                dry_run,
            )
        if _template(current) == wanted_template:
            return ActionResult(
                True, False, f"{target} already runs the template of {where}; nothing sent", None, dry_run
            )
        now_rs = next((rs for rs in owned if _template(rs) == _template(current)), None)
        annotations: dict[str, Any] = (current.get("metadata") or {}).get("annotations") or {}
        new_annotations = {k: v for k, v in annotations.items() if k in ANNOTATIONS_TO_SKIP}
        rs_annotations = (wanted.get("metadata") or {}).get("annotations") or {}
        new_annotations |= {k: v for k, v in rs_annotations.items() if k not in ANNOTATIONS_TO_SKIP}
        if now_rs is None:
            token, undo_note = None, f"{NO_REVERT}: the current template matches none of its ReplicaSets"
        else:
            token = UndoRevert(namespace, deployment, _name(now_rs), _name(wanted)).encode()
            undo_note = f"revert returns to ReplicaSet {_name(now_rs)}"
        if dry_run:
            return ActionResult(
                True, False, f"dry run: would roll {target} back to {where}; nothing sent", None, True
            )
        body: dict[str, Any] = {"spec": {"template": merge_patch(template, wanted_template)}}
        meta_patch = merge_patch(annotations, new_annotations)
        body["metadata"] = {"annotations": meta_patch} if meta_patch else {}
        version = (current.get("metadata") or {}).get("resourceVersion")
        if version:
            body["metadata"]["resourceVersion"] = version
        try:
            self._patch_deployment(namespace, deployment, body)
        except Exception as exc:
            return self._failed(step, target, exc, dry_run)
        return ActionResult(True, False, f"{verb} {target} to {where}; {undo_note}", token, False)

    # -- delete a pod --
    def delete_pod(
        self,
        namespace: str,
        pod: str,
        dry_run: bool = True,
        *,
        grace_period_s: int | None = None,
        require_controller: bool = True,
    ) -> ActionResult:
        """Delete ``pod`` so its controller replaces it; a pod no controller owns is refused unless
        ``require_controller`` is False (nothing would recreate it)."""
        target = f"{namespace}/{pod}"
        try:
            found = self._json(
                self.core.read_namespaced_pod(
                    pod, namespace, _preload_content=False, _request_timeout=self.request_timeout_s
                )
            )
        except Exception as exc:
            return self._failed("deleting pod", target, exc, dry_run)
        meta = found.get("metadata") or {}
        owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
        if owner is None and require_controller:
            return ActionResult(
                False,
                False,
                f"deleting pod {target} refused: no controller owns it, so nothing would recreate it",
                None,
                dry_run,
            )
        replaced = (
            f"its {owner.get('kind')} {owner.get('name')} replaces it"
            if owner
            else "nothing will recreate it"
        )
        if dry_run:
            return ActionResult(
                True, False, f"dry run: would delete pod {target} ({replaced}); nothing sent", None, True
            )
        uid = meta.get("uid")
        options = client.V1DeleteOptions(
            grace_period_seconds=grace_period_s,
            preconditions=client.V1Preconditions(uid=uid) if uid else None,
        )
        try:
            self.core.delete_namespaced_pod(
                pod, namespace, body=options, _preload_content=False, _request_timeout=self.request_timeout_s
            )
        except Exception as exc:
            return self._failed("deleting pod", target, exc, dry_run)
        return ActionResult(
            True,
            False,
            f"deleted pod {target} ({replaced}); {NO_REVERT}: a deleted pod cannot be restored",
            None,
            False,
        )

    # -- reverting --
    def revert(self, token: str, dry_run: bool = True) -> ActionResult:
        """Undo a scale (the scaler's token) or a rollout undo; other actions hand out no token."""
        if token_kind(token) == "scale":
            return self.scaler.revert(token, dry_run)
        try:
            undo = UndoRevert.decode(token)
        except ValueError as exc:
            result = bad_token(token, exc)
            return ActionResult(result.ok, result.retryable, result.detail, None, dry_run)
        target = f"{undo.namespace}/{undo.name}"
        try:
            current = self._deployment(undo.namespace, undo.name)
            owned = self._owned_replica_sets(undo.namespace, current)
            by_name = {_name(rs): rs for rs in owned}
            if undo.previous_rs not in by_name:
                raise _Refused(f"its ReplicaSet {undo.previous_rs} is gone (pruned from the history?)")
            applied = by_name.get(undo.applied_rs)
            if applied is None or _template(applied) != _template(current):
                raise _Refused(
                    f"it no longer runs the template of ReplicaSet {undo.applied_rs}; "
                    "someone changed it since"
                )
        except Exception as exc:
            return self._failed("reverting the undo of", target, exc, dry_run)
        return self._roll_to(
            undo.namespace,
            undo.name,
            current,
            owned,
            by_name[undo.previous_rs],
            dry_run,
            "reverted",
            "reverting",
        )
