"""ShellAction with harmless commands: /bin/echo, /bin/false, /bin/sleep, /bin/sh printing a lot."""

from __future__ import annotations

import time

import pytest

from opsmind.act.shell_action import AllowedCommand, ShellAction

ECHO = AllowedCommand(
    "restart_unit",
    "/bin/echo",
    ("restart", "--unit={service}", "{replicas}"),
    patterns={"replicas": r"[0-9]{1,2}"},
    undo="stop_unit",
)
STOP = AllowedCommand(
    "stop_unit", "/bin/echo", ("stop", "--unit={service}", "{replicas}"), undo="restart_unit"
)
FALSE = AllowedCommand("always_fails", "/bin/false")
FLAKY = AllowedCommand("flaky", "/bin/false", retry_on_failure=True)
SLEEP = AllowedCommand("slow", "/bin/sleep", ("5",), timeout_s=0.3)
CHATTY = AllowedCommand("chatty", "/bin/sh", ("-c", "seq 1 5000; echo oops >&2; exit 3"))


@pytest.fixture
def shell() -> ShellAction:
    return ShellAction([ECHO, STOP, FALSE, FLAKY, SLEEP, CHATTY], max_output_chars=40)


def test_runs_an_allowed_command_with_validated_fields(shell: ShellAction) -> None:
    result = shell.run("restart_unit", {"service": "web-1", "replicas": 3, "ignored": "x; rm -rf /"}, False)
    assert result.ok and not result.retryable and not result.dry_run
    assert (
        result.detail
        == "ran '/bin/echo restart --unit=web-1 3': exit status 0; stdout: restart --unit=web-1 3"
    )
    assert result.revert_token is not None
    undone = shell.revert(result.revert_token, False)
    assert undone.ok and "stdout: stop --unit=web-1 3" in undone.detail
    assert undone.revert_token is not None  # the undo's undo is the action again
    assert "restart --unit=web-1 3" in shell.revert(undone.revert_token, False).detail


def test_dry_run_is_the_default_and_runs_nothing(shell: ShellAction) -> None:
    result = shell.run("slow")
    assert result.ok and result.dry_run and result.revert_token is None
    assert result.detail == "dry run: would run '/bin/sleep 5'; nothing run"
    dry_revert = shell.revert(
        shell.run("restart_unit", {"service": "web", "replicas": 1}, False).revert_token or ""
    )
    assert dry_revert.ok and dry_revert.dry_run


@pytest.mark.parametrize(
    ("name", "fields", "why"),
    [
        (
            "rm",
            {},
            "'rm' is not an allowed command "
            "(allowed: always_fails, chatty, flaky, restart_unit, slow, stop_unit)",
        ),
        ("restart_unit", {"replicas": 1}, "restart_unit: needs the field 'service', which was not given"),
        ("restart_unit", {"service": "web; rm -rf /", "replicas": 1}, "does not match"),
        ("restart_unit", {"service": "--help", "replicas": 1}, "does not match"),
        ("restart_unit", {"service": "../../etc", "replicas": 1}, "does not match"),
        (
            "restart_unit",
            {"service": "web", "replicas": 100},
            "field 'replicas' value '100' does not match [0-9]{1,2}",
        ),
        ("restart_unit", {"service": "web", "replicas": True}, "must be a string or an integer"),
        ("restart_unit", {"service": "web\nx", "replicas": 1}, "does not match"),
    ],
)
def test_anything_not_allowed_is_refused_with_the_reason(
    shell: ShellAction, name: str, fields: dict[str, object], why: str
) -> None:
    result = shell.run(name, fields, False)
    assert not result.ok and not result.retryable and result.revert_token is None
    assert (
        result.detail.startswith("refused: ")
        and why in result.detail
        and result.detail.endswith("nothing run")
    )


def test_non_zero_exit_fails_and_is_retryable_only_if_configured(shell: ShellAction) -> None:
    failed = shell.run("always_fails", None, False)
    assert not failed.ok and not failed.retryable
    assert failed.detail == "'/bin/false' failed with exit status 1"
    flaky = shell.run("flaky", None, False)
    assert not flaky.ok and flaky.retryable


def test_timeout_kills_the_command(shell: ShellAction) -> None:
    started = time.monotonic()
    result = shell.run("slow", {}, False)
    assert time.monotonic() - started < 3
    assert not result.ok and not result.retryable
    assert result.detail == "'/bin/sleep 5' timed out after 0.3 s and was killed"


def test_captured_output_is_truncated(shell: ShellAction) -> None:
    result = shell.run("chatty", {}, False)
    assert not result.ok and "exit status 3" in result.detail
    tail = "\n".join(str(n) for n in range(4993, 5001))
    assert result.detail.endswith(f"; stdout: ...(23852 chars cut)\n{tail}; stderr: oops")
    assert len(result.detail) < 200


def test_missing_executable_is_refused() -> None:
    shell = ShellAction([AllowedCommand("ghost", "/nonexistent/bin/tool")])
    result = shell.run("ghost", {}, False)
    assert not result.ok and not result.retryable and "not an executable file here" in result.detail


def test_bad_revert_token_is_refused(shell: ShellAction) -> None:
    result = shell.revert('{"kind": "scale"}', False)
    assert not result.ok and not result.retryable and "not a shell revert token" in result.detail
    forged = shell.revert('{"kind": "shell", "command": "rm", "fields": {}}', False)
    assert not forged.ok and "not an allowed command" in forged.detail


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: AllowedCommand("x", "echo"), "absolute path"),
        (lambda: AllowedCommand("x", "/bin/echo", ("{a",)), "bad argument template"),
        (lambda: AllowedCommand("x", "/bin/echo", ("{a}",), patterns={"a": "("}), "not a regex"),
        (lambda: AllowedCommand("x", "/bin/echo", ("{a}",), patterns={"b": "x"}), "no argument uses: b"),
        (lambda: AllowedCommand("x", "/bin/echo", timeout_s=0), "timeout_s"),
        (lambda: ShellAction([AllowedCommand("x", "/bin/echo", undo="y")]), "its undo 'y' is not allowed"),
        (lambda: ShellAction([FALSE, FALSE]), "two allowed commands"),
    ],
)
def test_configuration_is_validated(make: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("argv", "fields"),
    [
        (["/bin/echo", "restart", "--unit=web-1", "3"], {"service": "web-1", "replicas": "3"}),
        (["/bin/echo", "restart", "--unit=web-1", "300"], None),  # replicas must be 1-2 digits
        (["/bin/echo", "restart", "--unit=web; rm -rf /", "3"], None),
        (["/bin/echo", "restart", "--unit=-x", "3"], None),  # a value may not start with '-'
        (["/bin/echo", "restart", "--unt=web", "3"], None),  # the literal part differs
        (["/bin/echo", "restart", "--unit=web"], None),  # one argument short
        (["/usr/bin/echo", "restart", "--unit=web", "3"], None),  # another executable
        (["/bin/echo", "restart", "--unit=web", "3", "4"], None),
    ],
)
def test_an_argv_matches_an_allowed_command_only_exactly(
    argv: list[str], fields: dict[str, str] | None
) -> None:
    assert ECHO.match(argv) == fields


def test_a_field_used_twice_must_have_one_value_and_pattern_groups_do_not_confuse_it() -> None:
    twice = AllowedCommand("t", "/bin/echo", ("{a}", "x{a}y"), patterns={"a": r"(ab|cd)+"})
    assert twice.match(["/bin/echo", "abcd", "xabcdy"]) == {"a": "abcd"}
    assert twice.match(["/bin/echo", "abcd", "xaby"]) is None


def test_run_argv_runs_the_allowed_command_it_matches(shell: ShellAction) -> None:
    result = shell.run_argv(["/bin/echo", "stop", "--unit=web", "2"], False)
    assert result.ok and "stdout: stop --unit=web 2" in result.detail and result.revert_token is not None
    refused = shell.run_argv(["/bin/rm", "-rf", "/"], False)
    assert not refused.ok and not refused.retryable
    assert refused.detail == "refused: '/bin/rm -rf /' matches no allowed command; nothing run"


def test_a_step_may_shorten_the_timeout_never_lengthen_it(shell: ShellAction) -> None:
    started = time.monotonic()
    result = shell.run_argv(["/bin/sleep", "5"], False, timeout_s=0.1)
    assert "timed out after 0.1 s" in result.detail and time.monotonic() - started < 2
    assert "timed out after 0.3 s" in shell.run_argv(["/bin/sleep", "5"], False, timeout_s=60).detail
