"""A remediation that runs a local command, but only one the configuration allows, exactly as allowed.

Each :class:`AllowedCommand` fixes the executable (an absolute path, run directly: never through a shell)
and every argument. Arguments may hold ``{field}`` placeholders, filled from the incident's fields only
after each value has matched its pattern in full (``patterns[field]``, by default
:data:`DEFAULT_VALUE_PATTERN`: a short word that cannot start with ``-``, so no value can become an option,
a path or a second command). Nothing else of the caller's reaches the command line, the environment is a
fixed minimal one, stdin is empty, and the command runs in its own process group, killed whole at its
timeout.

A refusal (unknown command, missing field, value not matching, executable missing) is not retryable and
says why; nothing runs. A non-zero exit or a timeout is a failure, retryable only when the command is
configured ``retry_on_failure``. The captured output goes into the detail, each stream cut to its last
``max_output_chars`` characters. A dry run (the default) validates and renders the command line and runs
nothing. A command with ``undo`` (the name of another allowed command) hands out a revert token that runs
it with the same fields, through the same checks.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from opsmind.act.base import ActionResult, bad_token

DEFAULT_VALUE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}"
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class AllowedCommand:
    """One allowed command: ``executable`` with ``args`` (templates), values checked by ``patterns``."""

    name: str
    executable: str
    args: tuple[str, ...] = ()
    patterns: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    retry_on_failure: bool = False
    undo: str | None = None

    def __post_init__(self) -> None:
        where = f"allowed command {self.name!r}"
        if not self.name:
            raise ValueError("an allowed command needs a name")
        if not os.path.isabs(self.executable) or "\0" in self.executable:
            raise ValueError(f"{where}: the executable must be an absolute path, got {self.executable!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"{where}: timeout_s must be positive, got {self.timeout_s}")
        object.__setattr__(self, "args", tuple(self.args))
        for arg in self.args:
            if "\0" in arg or "{" in PLACEHOLDER.sub("", arg) or "}" in PLACEHOLDER.sub("", arg):
                raise ValueError(f"{where}: bad argument template {arg!r} (placeholders are {{name}})")
        for name, pattern in self.patterns.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{where}: the pattern for {name!r} is not a regex: {exc}") from None
        unused = set(self.patterns) - set(self.fields)
        if unused:
            raise ValueError(f"{where}: patterns for fields no argument uses: {', '.join(sorted(unused))}")

    @property
    def fields(self) -> tuple[str, ...]:
        """The placeholders its arguments use, in order of first use."""
        seen: dict[str, None] = {}
        for arg in self.args:
            seen.update(dict.fromkeys(PLACEHOLDER.findall(arg)))
        return tuple(seen)

    def match(self, argv: Sequence[str]) -> dict[str, str] | None:
        """The field values that render this command as exactly ``argv``, or None when no values do (another
        executable, another number of arguments, a literal part differing, a value not matching its
        pattern, one field given two values). A runbook's shell step is rendered before it reaches the
        actuator; this is how it is held to the allow-list."""
        if len(argv) != len(self.args) + 1 or argv[0] != self.executable:
            return None
        values: dict[str, str] = {}
        for template, arg in zip(self.args, argv[1:], strict=True):
            names = PLACEHOLDER.findall(template)
            literals = PLACEHOLDER.split(template)[::2]
            # Named groups, so that groups inside a configured pattern do not shift the numbering.
            groups = [
                f"(?P<_f{i}>{self.patterns.get(n, DEFAULT_VALUE_PATTERN)})" for i, n in enumerate(names)
            ]
            regex = "".join(chain.from_iterable(zip(map(re.escape, literals), [*groups, ""], strict=True)))
            found = re.fullmatch(regex, arg)
            if found is None:
                return None
            for i, name in enumerate(names):
                value = found.group(f"_f{i}")
                if values.setdefault(name, value) != value:
                    return None
        return values if self.render(values) == list(argv) else None  # the argv it would run, exactly

    def render(self, values: Mapping[str, object]) -> list[str]:
        """The argv with ``values`` filled in; ``ValueError`` names the field that is missing or bad."""
        checked: dict[str, str] = {}
        for name in self.fields:
            if name not in values or values[name] is None:
                raise ValueError(f"needs the field {name!r}, which was not given")
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueError(f"field {name!r} must be a string or an integer, got {type(value).__name__}")
            text = str(value)
            pattern = self.patterns.get(name, DEFAULT_VALUE_PATTERN)
            if re.fullmatch(pattern, text) is None:
                raise ValueError(f"field {name!r} value {text[:80]!r} does not match {pattern}")
            checked[name] = text
        args = [PLACEHOLDER.sub(lambda m: checked[m.group(1)], arg) for arg in self.args]
        return [self.executable, *args]


def _tail(data: bytes, limit: int) -> str:
    text = data.decode("utf-8", "replace").strip()
    if len(text) <= limit:
        return text
    return f"...({len(text) - limit} chars cut){text[-limit:]}"


class ShellAction:
    """Runs allowed commands by name; everything else is refused with the reason."""

    def __init__(
        self,
        commands: Iterable[AllowedCommand],
        *,
        max_output_chars: int = 500,
        env: Mapping[str, str] | None = None,
        cwd: str = "/",
    ) -> None:
        self.commands: dict[str, AllowedCommand] = {}
        for command in commands:
            if command.name in self.commands:
                raise ValueError(f"two allowed commands are named {command.name!r}")
            self.commands[command.name] = command
        for command in self.commands.values():
            if command.undo is not None and command.undo not in self.commands:
                raise ValueError(
                    f"allowed command {command.name!r}: its undo {command.undo!r} is not allowed"
                )
        self.max_output_chars = max_output_chars
        self.env = dict(env if env is not None else DEFAULT_ENV)
        self.cwd = cwd

    def _refuse(self, why: str, dry_run: bool) -> ActionResult:
        return ActionResult(False, False, f"refused: {why}; nothing run", None, dry_run)

    def run_argv(
        self, argv: Sequence[str], dry_run: bool = True, timeout_s: float | None = None
    ) -> ActionResult:
        """Run ``argv`` if an allowed command renders as exactly it (the first that does, in the order
        configured), else refuse and say so; ``timeout_s`` may shorten the command's own timeout."""
        for command in self.commands.values():
            values = command.match(argv)
            if values is not None:
                return self.run(command.name, values, dry_run, timeout_s)
        shown = " ".join(argv)[:200]
        return self._refuse(f"{shown!r} matches no allowed command", dry_run)

    def run(
        self,
        name: str,
        fields: Mapping[str, object] | None = None,
        dry_run: bool = True,
        timeout_s: float | None = None,
    ) -> ActionResult:
        """Run the allowed command ``name`` with its placeholders filled from ``fields``; ``timeout_s``
        may shorten its configured timeout, never lengthen it."""
        command = self.commands.get(name)
        if command is None:
            allowed = ", ".join(sorted(self.commands)) or "none"
            return self._refuse(f"{name!r} is not an allowed command (allowed: {allowed})", dry_run)
        values = dict(fields or {})
        try:
            argv = command.render(values)
        except ValueError as exc:
            return self._refuse(f"{name}: {exc}", dry_run)
        if not (os.path.isfile(command.executable) and os.access(command.executable, os.X_OK)):
            return self._refuse(f"{name}: {command.executable} is not an executable file here", dry_run)
        shown = " ".join(argv)
        token = None
        if command.undo is not None:
            used = {k: str(values[k]) for k in command.fields}
            token = json.dumps({"kind": "shell", "command": command.undo, "fields": used}, sort_keys=True)
        if dry_run:
            return ActionResult(True, False, f"dry run: would run {shown!r}; nothing run", None, True)
        timeout = command.timeout_s if timeout_s is None else min(timeout_s, command.timeout_s)
        return self._execute(command, argv, shown, token, timeout)

    def _execute(
        self, command: AllowedCommand, argv: list[str], shown: str, token: str | None, timeout: float
    ) -> ActionResult:
        try:
            proc = subprocess.Popen(  # noqa: S603 - argv is an allowed executable with validated values
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            return ActionResult(False, False, f"{shown!r} could not start: {exc}", None, False)
        timed_out = False
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
        said = [
            f"{label}: {text}"
            for label, data in (("stdout", out), ("stderr", err))
            if (text := _tail(data, self.max_output_chars))
        ]
        output = f"; {'; '.join(said)}" if said else ""
        if timed_out:
            detail = f"{shown!r} timed out after {timeout:g} s and was killed{output}"
            return ActionResult(False, command.retry_on_failure, detail, None, False)
        if proc.returncode != 0:
            detail = f"{shown!r} failed with exit status {proc.returncode}{output}"
            return ActionResult(False, command.retry_on_failure, detail, None, False)
        note = "" if token else "; no revert token (no undo command configured)"
        return ActionResult(True, False, f"ran {shown!r}: exit status 0{output}{note}", token, False)

    def revert(self, token: str, dry_run: bool = True) -> ActionResult:
        """Run the undo command a token names, with its fields, through the same allow-list."""
        try:
            data: Any = json.loads(token)
        except (TypeError, ValueError):
            data = None
        if not (
            isinstance(data, dict) and data.get("kind") == "shell" and isinstance(data.get("command"), str)
        ):
            result = bad_token(token, ValueError("not a shell revert token"))
            return ActionResult(False, False, result.detail, None, dry_run)
        fields = data.get("fields")
        return self.run(data["command"], fields if isinstance(fields, dict) else {}, dry_run)
