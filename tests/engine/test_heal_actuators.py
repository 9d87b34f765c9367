"""GenericActions: runbook webhook steps against a real HTTP receiver on loopback, shell steps running
harmless local commands (/bin/echo), everything else passed to the platform actuator; the allow-lists
from the settings, and what the healer may choose with and without them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from opsmind.act.base import ActionResult
from opsmind.act.shell_action import AllowedCommand, ShellAction
from opsmind.clock import SimClock
from opsmind.config import ConfigError, Settings, load_settings
from opsmind.engine.heal_actuators import (
    GENERIC,
    GenericActions,
    KubernetesActuate,
    build_actuate,
    log_actuate,
    url_allowed,
)
from opsmind.heal.executor import ActionRequest
from opsmind.heal.healer import Healer
from opsmind.heal.runbook import ACTIONS, load_library, parse_runbook
from opsmind.store import SqliteStore
from opsmind.types.signature import verify
from tests.act.test_webhook_action import receiver_factory  # noqa: F401 - the fixture

ECHO = AllowedCommand("note", "/bin/echo", ("noted", "{service}"), undo="unnote")
UNDO = AllowedCommand("unnote", "/bin/echo", ("unnoted", "{service}"))


def request(action: str, **params: Any) -> ActionRequest:
    return ActionRequest("api", action, params, "rem-1/0", "rem-1", "notify_owner")


class Platform:
    """A test double of the platform actuator (what it was asked), naming what it can do."""

    actions = frozenset({"restart", "scale"})

    def __init__(self) -> None:
        self.asked: list[ActionRequest] = []

    def __call__(self, req: ActionRequest, dry_run: bool) -> ActionResult:
        self.asked.append(req)
        return ActionResult(True, False, f"platform did {req.action}", None, dry_run)


def test_actions_are_the_platforms_plus_each_generic_one_with_an_allow_list() -> None:
    assert GenericActions(log_actuate).actions == frozenset(ACTIONS) - GENERIC
    assert GenericActions(Platform()).actions == {"restart", "scale"}
    both = GenericActions(Platform(), ["http://127.0.0.1/"], shell=ShellAction([ECHO, UNDO]))
    assert both.actions == {"restart", "scale", "webhook", "shell"}
    assert "shell" not in GenericActions(Platform(), shell=ShellAction([])).actions


def test_other_actions_and_their_reverts_go_to_the_platform() -> None:
    platform = Platform()
    actuate = GenericActions(platform, ["http://127.0.0.1/"])
    assert actuate(request("restart", service="api"), False).detail == "platform did restart"
    scale_token = json.dumps({"kind": "scale", "namespace": "d", "name": "api", "previous": 2, "applied": 4})
    assert actuate(request("revert", revert_token=scale_token), False).ok
    assert [r.action for r in platform.asked] == ["restart", "revert"]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://hooks.example.com/heal", True),
        ("https://hooks.example.com/heal/purge?x=1", True),
        ("https://hooks.example.com/healer", False),
        ("https://hooks.example.com.evil.org/heal", False),
        ("http://hooks.example.com/heal", False),
        ("https://other.example.com/", True),
        ("https://other.example.com", False),
        ("https://hooks.example.com/heal/../admin", False),
        ("https://hooks.example.com/heal/%2e%2e/admin", False),
        ("https://hooks.example.com/heal/./x", False),
        ("https://hooks.example.com/heal/x..y?a=..", True),
    ],
)
def test_urls_are_allowed_only_under_a_prefix_at_a_path_boundary(url: str, ok: bool) -> None:
    assert url_allowed(url, ["https://hooks.example.com/heal", "https://other.example.com/"]) is ok


def test_a_webhook_step_is_sent_signed_with_its_remediation(receiver_factory: Any) -> None:  # noqa: F811
    receiver = receiver_factory([(200, {}, b'{"revert_token": "undo-42"}')])
    prefix = receiver.url.rsplit("/", 1)[0] + "/"
    actuate = GenericActions(Platform(), [prefix], webhook_secret="s3cret")
    step = request(
        "webhook", url=receiver.url, method="PATCH", body={"team": "core"}, headers={"X-Team": "a"}
    )
    dry = actuate(step, True)
    assert dry.ok and dry.dry_run and receiver.requests == []
    assert dry.detail.startswith(f"dry run: would PATCH notify_owner to {receiver.url}")
    result = actuate(step, False)
    assert result.ok and not result.dry_run and result.revert_token is not None
    headers, body = receiver.requests[0]
    sent = json.loads(body)
    assert receiver.methods == ["PATCH"] and headers["Idempotency-Key"] == "rem-1/0"
    assert headers["X-Team"] == "a" and verify("s3cret", body, headers, time.time())
    assert sent["action"] == "notify_owner" and sent["params"] == {"team": "core"}
    assert sent["remediation"] == {"service": "api", "id": "rem-1", "step": "notify_owner"}
    undone = actuate(request("revert", revert_token=result.revert_token), False)
    assert undone.ok and receiver.bodies()[1]["params"] == {"revert_token": "undo-42"}


def test_a_webhook_outside_the_allow_list_is_refused_and_nothing_is_sent(receiver_factory: Any) -> None:  # noqa: F811
    receiver = receiver_factory()
    step = request("webhook", url=receiver.url)
    off = GenericActions(Platform())(step, False)
    assert not off.ok and not off.retryable
    assert (
        off.detail
        == f"refused: a webhook step, but heal.webhook_urls allows no URL ({receiver.url}); nothing sent"
    )
    other = GenericActions(Platform(), ["http://127.0.0.1:1/"])(step, False)
    assert not other.ok and "is not under any of heal.webhook_urls" in other.detail
    forged = json.dumps({"kind": "webhook", "url": "http://127.0.0.1:1/x", "token": "t"})
    revert = GenericActions(Platform(), [receiver.url])(request("revert", revert_token=forged), False)
    assert not revert.ok and "not under any of heal.webhook_urls" in revert.detail
    assert receiver.requests == []


def test_a_shell_step_runs_only_an_allowed_command_and_reverts_with_its_undo() -> None:
    actuate = GenericActions(Platform(), shell=ShellAction([ECHO, UNDO]))
    result = actuate(request("shell", command=["/bin/echo", "noted", "api"]), False)
    assert result.ok and "stdout: noted api" in result.detail and result.revert_token is not None
    undone = actuate(request("revert", revert_token=result.revert_token), False)
    assert undone.ok and "stdout: unnoted api" in undone.detail
    refused = actuate(request("shell", command=["/bin/echo", "noted", "api;", "reboot"]), False)
    assert not refused.ok and "matches no allowed command" in refused.detail
    off = GenericActions(Platform())(request("shell", command=["/bin/echo", "noted", "api"]), False)
    assert (
        not off.ok
        and off.detail == "refused: a shell step, but heal.commands allows no command; nothing sent"
    )


WEBHOOK_RUNBOOK = {
    "name": "page_owner_hook",
    "description": "ask the owning team's automation to take over",
    "fault_kinds": ["unknown"],
    "risk": "low",
    "steps": [
        {
            "name": "hand_over",
            "precheck": {"no_remediation_running": "{service}"},
            "action": "webhook",
            "params": {"url": "https://hooks.example.com/heal/x", "body": {"service": "{service}"}},
            "verify": {
                "metric": "error_ratio",
                "service": "{service}",
                "op": "<",
                "value": 0.05,
                "timeout_s": 60,
            },
            "rollback": "none",
        }
    ],
}


def test_the_healer_chooses_webhook_runbooks_only_with_an_allow_list(tmp_path: Path) -> None:
    library = {**load_library(), "page_owner_hook": parse_runbook(WEBHOOK_RUNBOOK)}
    with SqliteStore(str(tmp_path / "h.db")) as store:
        for urls, unsupported in (([], {"webhook"}), (["https://hooks.example.com/heal/"], None)):
            actuate = GenericActions(log_actuate, urls)
            healer = Healer(store, SimClock(0), None, actuate, lambda *a: None, library=library)
            assert healer.unsupported.get("page_owner_hook") == unsupported


def test_settings_build_the_allow_lists(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "heal:\n  actuator: kubernetes\n  webhook_urls: ['https://hooks.example.com/heal/']\n"
        "  webhook_secret: s\n  commands:\n"
        "    - {name: note, executable: /bin/echo, args: [noted, '{service}'], undo: unnote}\n"
        "    - {name: unnote, executable: /bin/echo, args: [unnoted, '{service}']}\n"
    )
    actuate = build_actuate(load_settings(cfg), {})
    assert isinstance(actuate, GenericActions) and isinstance(actuate.platform, KubernetesActuate)
    assert actuate.actions == KubernetesActuate.actions | GENERIC
    assert actuate.webhook_secret == "s"


@pytest.mark.parametrize(
    ("heal", "why"),
    [
        ({"webhook_urls": ["ftp://x/"]}, "is not an http(s) URL prefix"),
        ({"commands": [{"name": "a", "executable": "echo"}]}, "heal.commands.0.executable"),
        (
            {"commands": [{"name": "a", "executable": "/bin/echo", "timeout_s": 0}]},
            "heal.commands.0.timeout_s",
        ),
    ],
)
def test_bad_allow_lists_are_refused_at_load(tmp_path: Path, heal: dict[str, Any], why: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"heal": heal}))
    with pytest.raises(ConfigError, match=why.replace("(", r"\(").replace(")", r"\)")):
        load_settings(cfg)


def test_a_command_the_act_layer_refuses_is_a_config_error_naming_it() -> None:
    settings = Settings.model_validate(
        {"heal": {"commands": [{"name": "a", "executable": "/bin/echo", "args": ["{x"], "undo": None}]}}
    )
    with pytest.raises(ConfigError, match=r"heal.commands\[0\]: allowed command 'a': bad argument template"):
        build_actuate(settings, {})
    undo = Settings.model_validate(
        {"heal": {"commands": [{"name": "a", "executable": "/bin/echo", "undo": "b"}]}}
    )
    with pytest.raises(ConfigError, match="its undo 'b' is not allowed"):
        build_actuate(undo, {})
