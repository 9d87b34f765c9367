"""Carrying out runbook actions: the heal executor's ``actuate(request, dry_run)`` over the act layer.

The executor speaks the runbooks' vocabulary (:data:`opsmind.heal.runbook.ACTION_SPECS`); an actuator
here translates it for one target and answers an :class:`~opsmind.act.base.ActionResult`:

- ``log``: writes what it was asked to the log and changes nothing (the safe default, so a fresh
  install with ``heal.mode: on`` still touches nothing until an actuator is chosen);
- ``kubernetes``: :class:`~opsmind.act.kubernetes_remediate.KubernetesRemediator` (rollout restart,
  rollout undo, pod deletion, scaling); actions it cannot do are refused, not guessed at;
- ``simulator``: must be handed to the engine by whoever owns the simulator (the engine may not import
  :mod:`opsmind.sim`), as ``Engine(remediators={"simulator": ...})``.

Whichever of these is chosen, :class:`GenericActions` sits in front of it for the two steps that work on
any platform: ``webhook`` (an HTTP call, :mod:`opsmind.act.webhook_action`) to a URL under one of
``heal.webhook_urls``, and ``shell`` (a local command, :mod:`opsmind.act.shell_action`) whose argv is one
of ``heal.commands`` exactly. Both are off until configured: without an allow-list, runbooks with such a
step are never chosen (the healer reads ``actions``) and running one by hand is refused.

The executor records an idempotency key before each call and never sends a recorded key again, so these
adapters need no deduplication of their own.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

import httpx

from opsmind.act.base import ActionResult
from opsmind.act.kubernetes_remediate import KubernetesRemediator
from opsmind.act.shell_action import AllowedCommand, ShellAction
from opsmind.act.webhook_action import WebhookAction
from opsmind.config import ConfigError, HealSettings, Settings
from opsmind.heal.executor import ActionRequest, Actuate, ActuatorReply
from opsmind.heal.runbook import ACTIONS

log = logging.getLogger(__name__)


def log_actuate(request: ActionRequest, dry_run: bool) -> ActuatorReply:
    """Say what would be done; nothing is changed (so a verification will see no effect)."""
    what = f"{request.action} {dict(request.params)} for remediation {request.remediation_id}"
    log.warning("heal (log actuator, changes nothing%s): %s", ", dry run" if dry_run else "", what)
    return ActionResult(True, False, f"logged {what}; the log actuator changes nothing", None, dry_run)


class KubernetesActuate:
    """Runbook actions on ``apps/v1`` Deployments named after the service; the client is built on first
    use, so a missing kubeconfig fails the first action (retryable) rather than the engine's start.
    ``actions`` names what it can do: the healer does not choose runbooks that need anything else."""

    actions = frozenset({"restart", "rollout_restart", "delete_pod", "rollback", "rollout_undo", "scale"})

    def __init__(self, namespace: str, factory: Callable[[], KubernetesRemediator]) -> None:
        self.namespace = namespace
        self._factory = factory
        self._k8s: KubernetesRemediator | None = None

    def __call__(self, request: ActionRequest, dry_run: bool) -> ActuatorReply:
        try:
            if self._k8s is None:
                self._k8s = self._factory()
        except Exception as exc:  # no cluster configuration: nothing was sent, it may work later
            return ActionResult(False, True, f"no Kubernetes client: {exc}", None, dry_run)
        return self._do(self._k8s, request.action, dict(request.params), dry_run)

    def _do(self, k8s: KubernetesRemediator, action: str, p: dict[str, Any], dry_run: bool) -> ActionResult:
        ns = str(p.get("namespace", self.namespace))
        if action == "revert":
            return k8s.revert(str(p.get("revert_token", "")), dry_run)
        if action in ("restart", "rollout_restart") and "pod" not in p:
            return k8s.rollout_restart(ns, str(p.get("deployment", p.get("service"))), dry_run)
        if action in ("restart", "delete_pod"):
            return k8s.delete_pod(ns, str(p["pod"]), dry_run)
        if action in ("rollback", "rollout_undo"):
            revision = int(p["revision"]) if "revision" in p else None
            return k8s.rollout_undo(ns, str(p.get("deployment", p.get("service"))), revision, dry_run)
        if action == "scale":
            name = str(p["service"])
            try:
                now = k8s.scaler.read_replicas(ns, name)
            except Exception as exc:
                return ActionResult(
                    False, True, f"reading {ns}/{name}'s replicas failed: {exc}", None, dry_run
                )
            return k8s.scale(ns, name, _target(now, p), dry_run, reason="runbook scale")
        return ActionResult(
            False, False, f"the kubernetes actuator cannot {action}; nothing sent", None, dry_run
        )


def _target(now: int, p: Mapping[str, Any]) -> int:
    """A scale step's replica count from ``replicas``, ``factor`` or ``add``, capped by ``max_replicas``."""
    if "replicas" in p:
        target = int(p["replicas"])
    elif "factor" in p:
        target = math.ceil(now * float(p["factor"]))
    else:
        target = now + int(p.get("add", 0))
    return max(1, min(int(p.get("max_replicas", 500)), target))


GENERIC = frozenset({"webhook", "shell"})


def url_allowed(url: str, prefixes: Sequence[str]) -> bool:
    """Whether ``url`` is one of ``prefixes`` or lies under one at a path boundary (so the prefix
    ``https://hooks.example.com`` does not admit ``https://hooks.example.com.evil.org/``). A path with a
    ``.`` or ``..`` segment (also percent-encoded) is never allowed: the receiver would resolve it out
    from under the prefix."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    if any(seg in (".", "..") for seg in unquote(path).split("/")):
        return False
    for prefix in prefixes:
        if url == prefix:
            return True
        stem = prefix if prefix.endswith("/") else prefix + "/"
        if url.startswith(stem):
            return True
    return False


class GenericActions:
    """Runbook ``webhook`` and ``shell`` steps (and the reverts of their tokens), in front of the platform
    actuator that carries out everything else. ``actions``: the platform's (all of the runbook vocabulary
    when it names none) without these two, plus each that has an allow-list."""

    def __init__(
        self,
        platform: Actuate,
        webhook_urls: Sequence[str] = (),
        webhook_secret: str | None = None,
        shell: ShellAction | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.platform = platform
        self.webhook_urls = tuple(webhook_urls)
        self.webhook_secret = webhook_secret
        self.shell = shell if shell is not None and shell.commands else None
        self._client = client
        can: frozenset[str] | None = getattr(platform, "actions", None)
        enabled = {"webhook"} if self.webhook_urls else set()
        enabled |= {"shell"} if self.shell is not None else set()
        self.actions = ((frozenset(ACTIONS) if can is None else can) - GENERIC) | enabled

    def __call__(self, request: ActionRequest, dry_run: bool) -> ActuatorReply:
        if request.action == "webhook":
            return self._webhook(request, dry_run)
        if request.action == "shell":
            return self._shell(request, dry_run)
        if request.action == "revert":
            kind, url = _token_kind(str(request.params.get("revert_token", "")))
            if kind == "webhook":
                return self._revert_webhook(str(request.params["revert_token"]), url, dry_run)
            if kind == "shell":
                if self.shell is None:
                    return _refused("a shell revert, but heal.commands allows no command", dry_run)
                return self.shell.revert(str(request.params["revert_token"]), dry_run)
        return self.platform(request, dry_run)

    def _client_for(self, timeout_s: float) -> httpx.Client:
        if self._client is None:  # one connection pool for every webhook step, made on first use
            self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)
        return self._client

    def _webhook(self, request: ActionRequest, dry_run: bool) -> ActionResult:
        p = request.params
        url = str(p.get("url", ""))
        if not self.webhook_urls:
            return _refused(f"a webhook step, but heal.webhook_urls allows no URL ({url})", dry_run)
        if not url_allowed(url, self.webhook_urls):
            return _refused(f"{url} is not under any of heal.webhook_urls", dry_run)
        timeout_s = float(p.get("timeout_s", 10.0))
        try:
            hook = WebhookAction(
                url,
                secret=self.webhook_secret,
                timeout_s=timeout_s,
                headers=dict(p.get("headers") or {}),
                client=self._client_for(timeout_s),
                method=str(p.get("method", "POST")),
            )
        except ValueError as exc:
            return _refused(str(exc), dry_run)
        remediation = {"service": request.service, "id": request.remediation_id, "step": request.step}
        body = p.get("body") or {}
        return hook.run(
            request.step,
            None,
            body,
            dry_run,
            idempotency_key=request.idempotency_key,
            remediation=remediation,
        )

    def _revert_webhook(self, token: str, url: str, dry_run: bool) -> ActionResult:
        if not url_allowed(url, self.webhook_urls):
            return _refused(
                f"a webhook revert to {url}, which is not under any of heal.webhook_urls", dry_run
            )
        hook = WebhookAction(url, secret=self.webhook_secret, client=self._client_for(10.0))
        return hook.revert(token, dry_run)

    def _shell(self, request: ActionRequest, dry_run: bool) -> ActionResult:
        if self.shell is None:
            return _refused("a shell step, but heal.commands allows no command", dry_run)
        argv = request.params.get("command")
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv) or not argv:
            return _refused("a shell step's command must be a non-empty list of strings", dry_run)
        timeout = request.params.get("timeout_s")
        return self.shell.run_argv(argv, dry_run, float(timeout) if timeout is not None else None)


def _refused(why: str, dry_run: bool) -> ActionResult:
    return ActionResult(False, False, f"refused: {why}; nothing sent", None, dry_run)


def _token_kind(token: str) -> tuple[str | None, str]:
    """The ``kind`` of a revert token (and its ``url``, for a webhook's); (None, "") when it is not ours."""
    try:
        data = json.loads(token)
    except (TypeError, ValueError):
        return None, ""
    if not isinstance(data, dict):
        return None, ""
    kind, url = data.get("kind"), data.get("url")
    return (kind if isinstance(kind, str) else None), (url if isinstance(url, str) else "")


def shell_from_settings(heal: HealSettings) -> ShellAction | None:
    """The allow-listed commands of ``heal.commands``; ConfigError names the one that is wrong."""
    if not heal.commands:
        return None
    commands = []
    for i, c in enumerate(heal.commands):
        try:
            commands.append(
                AllowedCommand(
                    c.name,
                    c.executable,
                    tuple(c.args),
                    dict(c.patterns),
                    c.timeout_s,
                    c.retry_on_failure,
                    c.undo,
                )
            )
        except ValueError as exc:
            raise ConfigError(f"heal.commands[{i}]: {exc}") from None
    try:
        return ShellAction(commands)
    except ValueError as exc:
        raise ConfigError(f"heal.commands: {exc}") from None


def build_actuate(settings: Settings, given: Mapping[str, Actuate]) -> Actuate:
    """The actuator ``heal.actuator`` names (one given by the caller, else one built from settings),
    behind :class:`GenericActions` for the webhook and shell steps."""
    heal = settings.heal
    secret = heal.webhook_secret.get_secret_value() if heal.webhook_secret is not None else None
    return GenericActions(_platform(settings, given), heal.webhook_urls, secret, shell_from_settings(heal))


def _platform(settings: Settings, given: Mapping[str, Actuate]) -> Actuate:
    kind = settings.heal.actuator
    if kind in given:
        return given[kind]
    if kind == "log":
        return log_actuate
    if kind == "kubernetes":
        s = settings.scale
        return KubernetesActuate(
            settings.heal.namespace,
            lambda: KubernetesRemediator.from_environment(kubeconfig=s.kubeconfig, context=s.kube_context),
        )
    raise ConfigError(
        f"heal.actuator: no {kind} actuator in this process; the simulator's remediator must be passed "
        "to Engine(remediators=...) by whoever runs the simulator (the demo)"
    )
