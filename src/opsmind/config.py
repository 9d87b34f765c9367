"""Settings: one YAML file plus ``OPSMIND_*`` environment overrides, validated at start-up.

Environment variables override the file, nested keys joined by ``__``: ``OPSMIND_API__PORT=9090`` sets
``api.port``. Unknown keys are errors, so a typo is caught instead of silently ignored. A bad file raises
:class:`ConfigError` whose message names every bad key and why.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from opsmind.label_regex import compile_label_regex


class StrictYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key repeated in one mapping. YAML 1.2 says keys are unique, yet
    PyYAML keeps the last one silently: a second ``api:`` section dropped the first one's settings with
    ``config check`` saying "valid"."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line)
            except TypeError:  # an unhashable key: the base class says so
                continue
            if first != key_node.start_mark.line:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first on line {first + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """YAML text through :class:`StrictYamlLoader` (safe, no duplicate keys); raises yaml.YAMLError."""
    return yaml.load(text, Loader=StrictYamlLoader)  # noqa: S506 - a SafeLoader subclass


class ConfigError(ValueError):
    """The configuration is invalid; ``str(err)`` lists ``key.path: reason`` lines."""


class _Section(BaseModel):
    # allow_inf_nan: an infinite interval or retention passes every bound (ge, le) and then breaks whatever
    # turns it into an integer (storage maintenance failed every cycle with raw_retention_s: .inf).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class StorageSettings(_Section):
    backend: Literal["sqlite", "postgres"] = Field(
        "sqlite", description="sqlite: one embedded file (path); postgres: a PostgreSQL server (dsn)"
    )
    path: str = Field(
        "opsmind.db",
        description="SQLite file (backend sqlite, with the API's users and tokens); ':memory:' keeps "
        "nothing on disk. Unused with backend postgres, which keeps users and tokens in pg_schema",
    )
    dsn: str | None = Field(
        None, description="PostgreSQL connection string (backend postgres), e.g. postgresql://opsmind@db/ops"
    )
    pg_schema: str = Field(
        "opsmind",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema holding OpsMind's tables (several instances may share one database)",
    )
    raw_retention_s: float = Field(2 * 86400, gt=0, description="keep raw samples this long")
    minute_retention_s: float = Field(14 * 86400, gt=0, description="keep 1-minute rollups this long")
    hour_retention_s: float = Field(400 * 86400, gt=0, description="keep 1-hour rollups this long")
    maintenance_interval_s: float = Field(60, gt=0, description="how often rollups and retention run")

    @model_validator(mode="after")
    def _retention_order(self) -> StorageSettings:
        if not self.raw_retention_s <= self.minute_retention_s <= self.hour_retention_s:
            raise ValueError("retention must grow with resolution: raw <= minute <= hour")
        if self.backend == "postgres" and not (self.dsn or "").strip():
            raise ValueError("storage.backend postgres needs storage.dsn (a PostgreSQL connection string)")
        return self


Overflow = Literal["block", "shed"]


def _default_topic_overflow() -> dict[str, Overflow]:
    return {"samples": "shed"}


class BusSettings(_Section):
    backend: Literal["memory", "redis"] = Field(
        "memory", description="memory: in-process (one engine); redis: Redis Streams (redis_url)"
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", pattern=r"^rediss?://", description="Redis server (backend redis)"
    )
    redis_prefix: str = Field(
        "opsmind",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="key prefix of the streams (topic t is the stream {prefix}:{t})",
    )
    max_backlog: int = Field(10_000, ge=1, description="unacked messages per topic before backpressure")
    overflow: Overflow = Field(
        "block", description="when a topic is full: make producers wait, or drop and count"
    )
    ack_timeout_s: float = Field(30, gt=0, description="an unacked message is redelivered after this")
    block_timeout_s: float = Field(5, gt=0, description="a blocked producer sheds after this long")
    topic_overflow: dict[str, Overflow] = Field(
        default_factory=_default_topic_overflow,
        description="per-topic override of overflow; samples shed so a stuck detector never stalls ingest",
    )


class IngestSettings(_Section):
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="largest request body accepted")
    max_decoded_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="largest decompressed body")
    max_samples_per_request: int = Field(500_000, ge=1)
    max_series_per_request: int = Field(100_000, ge=1)
    max_series: int = Field(1_000_000, ge=1, description="active series limit across the engine")
    future_grace_s: float = Field(
        600,
        ge=0,
        description="how far ahead of the engine's clock a sample, event or alert time may be (seconds); "
        "later ones are refused (samples, events) or taken as received (Alertmanager alerts)",
    )


class ScrapeTarget(_Section):
    url: HttpUrl
    interval_s: float = Field(15, gt=0)
    timeout_s: float = Field(10, gt=0)
    labels: dict[str, str] = Field(default_factory=dict, description="added to every scraped series")


class KubernetesDiscoverySettings(_Section):
    """Services discovered from the Deployments of Kubernetes namespaces (ingest/kubernetes_discovery.py):
    registered, scraped through their Service when their pods carry Prometheus' scrape annotations, and
    deregistered when their Deployment goes. The cluster is reached as for scaling (scale.kubeconfig,
    scale.kube_context; in-cluster by default)."""

    enabled: bool = False
    namespaces: list[str] = Field(default_factory=lambda: ["default"], min_length=1)
    label_selector: str = Field("", description="only Deployments matching it, e.g. 'opsmind.io/watch=true'")
    interval_s: float = Field(60, ge=5, description="how often the namespaces are listed")
    scrape_interval_s: float = Field(
        15, ge=1, le=3600, description="how often a discovered service is scraped"
    )


class DiscoverySettings(_Section):
    kubernetes: KubernetesDiscoverySettings = Field(default_factory=KubernetesDiscoverySettings)


class DetectSettings(_Section):
    enabled: bool = True
    threshold: float = Field(
        0.99999, gt=0, lt=1, description="anomaly probability at or above which a point is anomalous"
    )
    relearn_after: int = Field(
        10, ge=1, description="consecutive anomalous points after which a lasting shift is learned as normal"
    )
    new_series_warmup_s: float = Field(
        0.0,
        ge=0,
        description="learn a new series without judging it while younger than this (and shorter than 60 "
        "points): a new pod's start-up is not its normal (300 is a good value where pods churn); 0: off, "
        "the default, because the same blindness missed memory leaks whose restarted pods are new series "
        "(opsmind.detect.ensemble)",
    )
    multivariate: bool = Field(
        True, description="also score each service's golden signals together (IsolationForest per service)"
    )
    context: bool = Field(
        False,
        description="also score series for sequence novelty with CAD OSE (per series, in Python: about "
        "1 ms a point and up to about 10 MB a series; off by default because a backfill through it holds "
        "the interpreter for seconds, which starves the API)",
    )
    context_series: int = Field(
        100, ge=0, description="how many series (the first seen) the contextual detector scores"
    )


class IncidentSettings(_Section):
    group_window_s: float = Field(
        300, gt=0, description="anomalies of a service this close form one incident"
    )
    min_anomalies: int = Field(
        2, ge=1, description="anomalies of a service within the group window before an incident opens"
    )
    resolve_after_s: float = Field(600, gt=0, description="resolve when no anomaly arrived for this long")
    hold_while_breaching: bool = Field(
        True,
        description="do not auto-resolve while a service of the incident breaches an objective "
        "(predict.latency_slo_s, predict.error_objective, a ready replica) it met before the incident",
    )
    alert_firing_hold_s: float = Field(
        18_000,
        ge=0,
        description="do not auto-resolve an incident while an Alertmanager alert in it still fires, counting "
        "an alert as firing while its last firing notification is younger than this; Alertmanager re-sends "
        "a firing alert every repeat_interval (4 h by default), so 5 h outlasts one repeat with room for a "
        "late one, and an Alertmanager that stopped sending cannot hold an incident open for ever (0: off)",
    )
    check_interval_s: float = Field(15, gt=0)
    root_cause: bool = Field(True, description="rank likely root-cause services when an incident opens")
    root_cause_lookback_s: float = Field(
        1800, gt=0, description="metrics before the first anomaly that count as normal for ranking"
    )
    topology: dict[str, list[str]] = Field(
        default_factory=dict,
        description="service -> services it calls: for grouping, root causes and blast radius",
    )
    reopen_window_s: float = Field(
        1800, ge=0, description="a resolved incident whose services relapse this soon is reopened"
    )
    flap_threshold: int = Field(
        3, ge=1, description="reopened this many times, an incident is flapping and its notifications held"
    )
    criticality: dict[str, float] = Field(
        default_factory=dict, description="service -> criticality 0-1 for priority (default 0.5)"
    )

    @field_validator("criticality")
    @classmethod
    def _criticality_in_range(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not 0.0 <= x <= 1.0}
        if bad:
            raise ValueError(f"criticality must be between 0 and 1: {bad}")
        return v


class WebhookSettings(_Section):
    url: HttpUrl
    timeout_s: float = Field(5, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_s: float = Field(0.5, gt=0, description="first retry delay; doubles each attempt")
    headers: dict[str, str] = Field(default_factory=dict)
    secret: SecretStr | None = Field(
        None, description="sign each request with HMAC-SHA256 (X-OpsMind-Signature) under this secret"
    )


class SlackSettings(_Section):
    url: HttpUrl = Field(description="a Slack incoming-webhook URL (or any Slack-compatible one)")
    timeout_s: float = Field(5, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_s: float = Field(0.5, gt=0, description="first retry delay; doubles each attempt")


class AlertmanagerSettings(_Section):
    url: HttpUrl = Field(description="Alertmanager's base URL, e.g. http://127.0.0.1:9093")
    timeout_s: float = Field(5, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_s: float = Field(0.5, gt=0, description="first retry delay; doubles each attempt")
    extra_labels: dict[str, str] = Field(default_factory=dict, description="added to every alert's labels")


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class MatcherSettings(_Section):
    """One label matcher in Alertmanager's API v2 shape, as silences use (see ``incidents/muting.py``)."""

    name: str = Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", description="label name")
    value: str = Field(description="label value, or a regular expression matched against the whole value")
    isRegex: bool = False  # noqa: N815 - Alertmanager's spelling, so silences and windows read alike
    isEqual: bool = True  # noqa: N815

    @model_validator(mode="after")
    def _regex_compiles(self) -> MatcherSettings:
        if self.isRegex:
            try:
                compile_label_regex(self.value)
            except ValueError as exc:
                raise ValueError(f"value is {exc}") from exc
        return self


class MaintenanceWindow(_Section):
    """A weekly window during which notifications for matching incidents are muted.

    Times are UTC. A window may run past midnight (``start: "23:00"``, ``duration_s: 7200`` on ``sat``
    covers Saturday 23:00 to Sunday 01:00); ``days`` are the days on which it *starts*.
    """

    name: str = Field(min_length=1, description="shown in the audit log when the window mutes something")
    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS), min_length=1, description="days (UTC) on which it starts"
    )
    start: str = Field(description='start time of day, "HH:MM" in UTC, 24-hour clock')
    duration_s: float = Field(gt=0, le=7 * 86400, description="how long it lasts, at most a week")
    matchers: list[MatcherSettings] = Field(
        min_length=1, description="every matcher must match an incident's labels for it to be muted"
    )

    @field_validator("days", mode="before")
    @classmethod
    def _lower_days(cls, v: Any) -> Any:
        return [d.lower() if isinstance(d, str) else d for d in v] if isinstance(v, list) else v

    @field_validator("start")
    @classmethod
    def _hh_mm(cls, v: str) -> str:
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", v.strip())
        if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise ValueError(f'start must be "HH:MM" (24-hour clock, UTC), got {v!r}')
        return f"{int(m.group(1)):02d}:{m.group(2)}"

    @property
    def start_s(self) -> int:
        """Seconds after midnight UTC at which the window starts."""
        hh, mm = self.start.split(":")
        return int(hh) * 3600 + int(mm) * 60


class NotifySettings(_Section):
    """Where notifications go, and when: Alertmanager-like group timers, inhibition and maintenance."""

    log: bool = True
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    slack: list[SlackSettings] = Field(default_factory=list)
    alertmanagers: list[AlertmanagerSettings] = Field(default_factory=list)
    group_wait_s: float = Field(
        30, ge=0, description="wait this long before an incident's first notification, folding updates"
    )
    group_interval_s: float = Field(
        300, gt=0, description="send an incident's later changes (and resolution) at most this often"
    )
    repeat_interval_s: float = Field(
        4 * 3600, gt=0, description="re-send an unchanged, still-active incident this often"
    )
    flush_interval_s: float = Field(
        1, gt=0, description="how often due notifications are checked; timers fire up to this late"
    )
    inhibition_slack_s: float = Field(
        60, ge=0, description="an upstream incident opened up to this long after a downstream one inhibits it"
    )
    maintenance_windows: list[MaintenanceWindow] = Field(
        default_factory=list, description="recurring weekly windows that mute matching incidents"
    )

    @field_validator("maintenance_windows")
    @classmethod
    def _unique_names(cls, v: list[MaintenanceWindow]) -> list[MaintenanceWindow]:
        names = [w.name for w in v]
        if len(set(names)) != len(names):
            raise ValueError("maintenance window names must be unique")
        return v


class PredictSettings(_Section):
    """Load forecasts, capacity models, bottleneck warnings and SLO burn rates per service."""

    enabled: bool = True
    interval_s: float = Field(
        60, gt=0, description="one forecast step: load is averaged over it and observed"
    )
    load_metrics: list[str] = Field(
        default_factory=lambda: ["request_rate", "requests_per_second"],
        min_length=1,
        description="service-level request-rate series (per second), first found wins",
    )
    latency_metric: str = Field("latency_seconds", min_length=1, description="latency series with quantiles")
    latency_quantile: str = Field("0.95", description="the quantile the latency SLO is written on")
    error_metric: str = Field("error_ratio", min_length=1, description="share of failed requests, 0-1")
    replicas_metrics: list[str] = Field(
        default_factory=lambda: ["replicas_ready", "replicas_desired"], min_length=1
    )
    latency_slo_s: float = Field(0.5, gt=0, description="latency SLO on latency_quantile, seconds")
    latency_slo_overrides: dict[str, float] = Field(
        default_factory=dict, description="service -> its own latency SLO, seconds"
    )
    error_objective: float = Field(0.999, gt=0, lt=1, description="availability SLO, e.g. 0.999")
    error_objective_overrides: dict[str, float] = Field(
        default_factory=dict, description="service -> its own availability SLO, e.g. 0.95 for a batch worker"
    )
    slo_period_s: float = Field(30 * 86400, gt=0, description="the SLO's rolling period")
    refit_every: int = Field(60, ge=1, description="refit each load forecaster every this many steps")
    min_history: int = Field(30, ge=2, description="steps of load needed before the first forecast")
    max_history: int = Field(7 * 1440, ge=10, description="steps of load kept per service")
    level: int = Field(80, gt=0, lt=100, description="prediction interval (%) that warnings read")
    scale_level: int = Field(
        95,
        gt=0,
        lt=100,
        description="upper forecast bound (%) published for the scaler, checked against the realised "
        "errors (predict/outlook.py trusted_upper): what `opsmind bench autoscale` scores",
    )
    warn_threshold: float = Field(
        0.2,  # predict.bottleneck.RAISE_P: the gate that `opsmind bench predict` scores
        gt=0,
        lt=1,
        description="breach probability that raises a warning (held for a minute: the warning gate)",
    )
    learn_warnings: bool = Field(
        True,
        description="latency-SLO warnings by a rule learned online per service from its own warnings and "
        "breaches (predict/warning_learner.py), the gate alone during its warm-up; false: the gate alone",
    )
    min_lead_s: float = Field(300, ge=0, description="a warning expected sooner than this is 'imminent'")
    max_lead_s: float = Field(900, gt=0, description="warn of breaches expected within this")
    capacity_refit_s: float = Field(900, gt=0, description="how often each capacity model is refitted")
    capacity_lookback_s: float = Field(6 * 3600, gt=0, description="load/latency history the fit uses")
    outlook_interval_s: float = Field(3600, gt=0, description="how often the week-ahead outlook is redone")
    outlook_history_s: float = Field(28 * 86400, gt=0, description="hourly peak-load history it uses")
    max_services: int = Field(500, ge=1, description="services followed at most")

    @field_validator("latency_slo_overrides")
    @classmethod
    def _positive_slos(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not x > 0}
        if bad:
            raise ValueError(f"latency SLOs must be positive seconds: {bad}")
        return v

    @field_validator("error_objective_overrides")
    @classmethod
    def _objectives_below_one(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not 0 < x < 1}
        if bad:
            raise ValueError(f"availability SLOs must be between 0 and 1 (exclusive): {bad}")
        return v

    @model_validator(mode="after")
    def _leads(self) -> PredictSettings:
        if self.min_lead_s > self.max_lead_s:
            raise ValueError("min_lead_s must not exceed max_lead_s")
        if self.min_history > self.max_history:
            raise ValueError("min_history must not exceed max_history")
        return self

    def latency_slo(self, service: str) -> float:
        return self.latency_slo_overrides.get(service, self.latency_slo_s)

    def error_objective_for(self, service: str) -> float:
        return self.error_objective_overrides.get(service, self.error_objective)


class ScaleServiceSettings(_Section):
    """How one service is scaled: bounds, policy, actuator and what a replica costs."""

    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(10, ge=1)
    target_utilisation: float = Field(0.7, gt=0, le=1, description="how full each replica may run")
    headroom: float = Field(0.1, ge=0, le=10, description="extra capacity over the forecast, a fraction")
    policy: Literal["predictive", "hpa"] = "predictive"
    actuator: Literal["log", "kubernetes", "simulator"] = "log"
    dry_run: bool | None = Field(None, description="overrides scale.dry_run for this service")
    namespace: str = Field("default", min_length=1, description="Kubernetes namespace of the Deployment")
    deployment: str | None = Field(
        None, description="Deployment (or simulated service) name; default: the service"
    )
    startup_s: float = Field(
        120, ge=0, description="pod start-up time: the forecast horizon to provision for"
    )
    scale_down_window_s: float = Field(300, ge=0, description="scale down only to the window's highest need")
    capacity_per_replica: float | None = Field(
        None, gt=0, description="load one replica serves at 100% (a load test); used when none is learned"
    )
    provider: str = "aws"
    region: str = "us-east-1"
    instance_type: str = "m5.large"
    vcpu_per_replica: float = Field(1.0, gt=0, description="vCPUs one replica needs, for cost")
    allow_move: bool = Field(False, description="recommend moving to cheaper regions/providers")

    @model_validator(mode="after")
    def _bounds(self) -> ScaleServiceSettings:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})"
            )
        if (
            self.policy == "hpa"
            and abs(self.target_utilisation * 100 - round(self.target_utilisation * 100)) > 1e-9
        ):
            raise ValueError("the hpa policy needs target_utilisation in whole percent (e.g. 0.6)")
        return self


class ScaleSettings(_Section):
    """The scaling controller. Nothing is scaled unless a service is listed; dry-run unless switched off."""

    interval_s: float = Field(15, gt=0, description="decision loop period (the HPA's sync period)")
    dry_run: bool = Field(True, description="decide and record, but ask actuators to change nothing")
    hold_down_during_incidents: bool = Field(
        True,
        description="no automatic scale-down of a service while an incident involving it is not resolved "
        "(removing capacity from a service in trouble can deepen the trouble); scale-up is never held",
    )
    services: dict[str, ScaleServiceSettings] = Field(default_factory=dict)
    prices: str | None = Field(None, description="a price CSV; default: the bundled table")
    kubeconfig: str | None = Field(None, description="default: in-cluster, $KUBECONFIG, ~/.kube/config")
    kube_context: str | None = None


class HealRateLimitSettings(_Section):
    """At most ``max_count`` remediations started within any ``window_s`` seconds."""

    max_count: int = Field(ge=0)
    window_s: float = Field(gt=0)


class HealInventoryEntry(_Section):
    """What the operator declares about one service for the fault classifier (no metric says it)."""

    kind: Literal["api", "ml", "worker", "database", "cache"] = Field(
        "api", description="what the service is"
    )
    memory_limit_mb: float | None = Field(
        None, gt=0, description="its containers' memory limit: a memory trend is read as a share of it"
    )


class HealCommandSettings(_Section):
    """A local command a runbook's ``shell`` step may run (docs/RUNBOOKS.md, "Webhook and shell steps"):
    the step's argv must be exactly this executable and these arguments, each ``{field}`` filled with a
    value matching its pattern. Checked in full when the engine starts (``opsmind.act.shell_action``)."""

    name: str = Field(min_length=1, description="how the audit and the undo refer to it")
    executable: str = Field(min_length=2, pattern=r"^/", description="absolute path, run without a shell")
    args: list[str] = Field(
        default_factory=list, description="argument templates, e.g. '--service={service}'"
    )
    patterns: dict[str, str] = Field(
        default_factory=dict,
        description="field -> regex its value must match in full (default: a short word)",
    )
    timeout_s: float = Field(10, gt=0, description="killed (with its process group) after this")
    retry_on_failure: bool = Field(False, description="a non-zero exit or a timeout may be tried again")
    undo: str | None = Field(None, description="the allowed command that reverts it, with the same fields")


class HealSettings(_Section):
    """Self-healing: classify incidents, run guarded runbooks (docs/RUNBOOKS.md). Off unless enabled, and
    then dry-run until ``mode`` (or ``PUT /api/v1/automation``) says ``on``."""

    enabled: bool = Field(False, description="run the heal stage (remediations, approval API)")
    mode: Literal["off", "dry_run", "on"] = Field(
        "dry_run", description="off refuses everything, dry_run records what would be done, on acts"
    )
    approval_above_risk: Literal["none", "low", "medium", "high"] = Field(
        "medium",
        description="runbooks riskier than this wait for a person's approval; none: every runbook waits",
    )
    cooldown_service_s: float = Field(300, ge=0, description="quiet time on a service after a remediation")
    cooldown_runbook_s: float = Field(900, ge=0, description="quiet time before a runbook runs again there")
    rate_service: HealRateLimitSettings = Field(
        default_factory=lambda: HealRateLimitSettings(max_count=3, window_s=3600)
    )
    rate_global: HealRateLimitSettings = Field(
        default_factory=lambda: HealRateLimitSettings(max_count=20, window_s=3600)
    )
    blast_radius_pct: float = Field(50, ge=0, le=100, description="most replicas touched at once, percent")
    blast_radius_min_replicas: int = Field(1, ge=0, description="always allowed to touch this many")
    runbook_dirs: list[str] = Field(
        default_factory=list, description="folders of your own runbooks, loaded beside the bundled ones"
    )
    bundled_runbooks: bool = Field(True, description="also load the runbooks that ship with OpsMind")
    classifier_path: str | None = Field(
        None, description="a trained fault classifier (FaultClassifier.save); without it: kind unknown"
    )
    actuator: Literal["log", "kubernetes", "simulator"] = Field(
        "log", description="what carries out runbook actions; log changes nothing"
    )
    namespace: str = Field("default", min_length=1, description="Kubernetes namespace of the services")
    tick_interval_s: float = Field(5, gt=0, description="how often remediations are driven and verified")
    observe_again_s: float = Field(
        60, gt=0, description="an unclear incident that harms nobody is classified again after this"
    )
    impact_priority: float = Field(
        70, ge=0, le=100, description="incidents at or above this priority count as affecting users"
    )
    settle_s: float = Field(
        40,
        ge=0,
        description="after a remediation of a still-open incident ends, wait this long to act again",
    )
    approval_wait_s: float = Field(
        300,
        ge=0,
        description="while a proposal waits this long for a person, nothing else is proposed for it",
    )
    inventory: dict[str, HealInventoryEntry] = Field(
        default_factory=dict, description="service -> its kind and memory limit, as declared"
    )
    entry_service: str | None = Field(
        None, description="the service whose traffic is the fleet's load (default: the topology's one root)"
    )
    webhook_urls: list[str] = Field(
        default_factory=list,
        description="URL prefixes a runbook webhook step may call; none: runbooks with one are never chosen",
    )
    webhook_secret: SecretStr | None = Field(
        None, description="sign runbook webhook requests with HMAC-SHA256 (X-OpsMind-Signature) under this"
    )
    commands: list[HealCommandSettings] = Field(
        default_factory=list,
        description="local commands a runbook's shell step may run; none: runbooks with one are never chosen",
    )

    @field_validator("webhook_urls")
    @classmethod
    def _http_prefixes(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not re.fullmatch(r"https?://[^/?#\s]+(/\S*)?", url):
                raise ValueError(
                    f"{url!r} is not an http(s) URL prefix such as https://hooks.example.com/heal/"
                )
        return urls


class LiveSettings(_Section):
    """The live hub behind the dashboard's WebSocket (docs/DASHBOARD.md, "Live updates")."""

    enabled: bool = Field(True, description="follow the engine's events for /api/v1/ws")
    buffer_size: int = Field(
        10_000, ge=1, le=10_000_000, description="latest events kept for a client resuming with since"
    )
    client_queue: int = Field(
        1_000, ge=1, description="messages waiting for one client before it is dropped (close 1013)"
    )
    health_interval_s: float = Field(
        15, ge=0, description="how often service health scores are computed for the health topic; 0: never"
    )


class AuthUser(_Section):
    """One entry of ``api.auth.users_file``: a user's password (hashed when loaded) and role."""

    password: SecretStr = Field(min_length=1)
    role: Literal["viewer", "operator", "admin"]


class AuthSettings(_Section):
    """Access control of the API (docs/DASHBOARD.md): bearer tokens, roles viewer < operator < admin."""

    enabled: bool = Field(
        False,
        description="require a token; when not set, on as soon as any user exists (users_file or the CLI)",
    )
    session_ttl_s: float = Field(12 * 3600, gt=0, description="how long a login's session token lasts")
    users_file: str | None = Field(
        None, description="YAML {name: {password, role}}, loaded (hashed) at start; never stored in clear"
    )


def read_users_file(path: str | Path) -> dict[str, AuthUser]:
    """The users of an ``api.auth.users_file``; ConfigError naming the file and the bad field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the users file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: the users file is not UTF-8 text ({exc.reason})") from exc
    try:
        loaded = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict) or not loaded:
        raise ConfigError(f"{p}: must be a non-empty mapping {{name: {{password, role}}}}")
    users: dict[str, AuthUser] = {}
    for name, entry in loaded.items():
        if not isinstance(name, str) or not name.strip() or name != name.strip() or len(name) > 128:
            raise ConfigError(
                f"{p}: {name!r}: a user name must be 1-128 characters without surrounding blanks"
            )
        try:
            users[name] = AuthUser.model_validate(entry)
        except ValidationError as exc:
            lines = []
            for e in exc.errors():
                field = ".".join([name, *(str(x) for x in e["loc"])])
                lines.append(f"{p}: {field}: {'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}")
            raise ConfigError("\n".join(lines)) from exc
    return users


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    auth: AuthSettings = Field(default_factory=AuthSettings)

    @field_validator("host")
    @classmethod
    def _host_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("host must not be empty")
        return v


class Settings(BaseSettings):
    """Everything the engine needs; every field has a working default (the embedded set-up)."""

    model_config = SettingsConfigDict(
        env_prefix="OPSMIND_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    storage: StorageSettings = Field(default_factory=StorageSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    scrape: list[ScrapeTarget] = Field(default_factory=list)
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    detect: DetectSettings = Field(default_factory=DetectSettings)
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    predict: PredictSettings = Field(default_factory=PredictSettings)
    scale: ScaleSettings = Field(default_factory=ScaleSettings)
    heal: HealSettings = Field(default_factory=HealSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first so it overrides the values read from the YAML file (passed as init kwargs).
        return (env_settings, init_settings)


def format_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{loc}: {msg}")
    return "\n".join(lines)


def _misspelt_environment() -> list[str]:
    """``OPSMIND_<SECTION>_<KEY>`` variables (one underscore where two belong): pydantic-settings matches
    only ``OPSMIND_<SECTION>`` and ``OPSMIND_<SECTION>__<KEY>`` and ignores the rest, so
    ``OPSMIND_API_PORT=9090`` left the port at 8080 without a word; and ``OPSMIND_<X>__<KEY>`` where
    ``X`` is no section (``OPSMIND_STORAGEE__PATH``), which was ignored the same way. Other ``OPSMIND_*``
    variables (a token, test switches) neither start with a section's name nor hold ``__``, and are left
    alone."""
    sections = sorted(Settings.model_fields, key=len, reverse=True)
    found = []
    for name in sorted(os.environ):
        rest = name.removeprefix("OPSMIND_").lower()
        if rest == name.lower() or rest in Settings.model_fields:
            continue
        if "__" in rest:
            head, _, tail = rest.partition("__")
            if head not in Settings.model_fields:
                close = difflib.get_close_matches(head, Settings.model_fields, n=1)
                hint = f"; did you mean OPSMIND_{close[0].upper()}__{tail.upper()}?" if close else ""
                found.append(f"{name} (no settings section {head!r}{hint})")
            continue
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is not None:
            key = rest[len(section) + 1 :].upper()
            found.append(f"{name} (did you mean OPSMIND_{section.upper()}__{key}?)")
    return found


def _env_sources(exc: ValidationError) -> list[str]:
    """The ``OPSMIND_*`` variables set for the fields ``exc`` refuses (``api.port`` <- ``OPSMIND_API__PORT``,
    or the whole section's), so an error is not blamed on a file that does not hold the value."""
    found: set[str] = set()
    for error in exc.errors():
        loc = [str(p).upper() for p in error.get("loc", ()) if not isinstance(p, int)]
        for n in range(len(loc), 0, -1):
            name = "OPSMIND_" + "__".join(loc[:n])
            if name in os.environ:
                found.add(name)
                break
    return sorted(found)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read ``path`` (YAML) if given, apply environment overrides, validate, and return settings."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not UTF-8 text ({exc.reason})") from exc
        try:
            loaded = load_yaml(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"{p}: the top level must be a mapping of sections, got {type(loaded).__name__}"
            )
        data = loaded
    data.update(overrides)
    misspelt = _misspelt_environment()
    if misspelt:
        raise ConfigError("environment variables OpsMind would ignore: " + "; ".join(misspelt))
    try:
        return Settings(**data)
    except ValidationError as exc:
        where = f"{path}: " if path is not None else ""
        env = _env_sources(exc)
        source = f" (values from the environment: {', '.join(env)})" if env else ""
        raise ConfigError(f"{where}invalid configuration{source}\n{format_validation_error(exc)}") from exc
    except SettingsError as exc:  # an OPSMIND_* variable of a whole section that is not JSON
        raise ConfigError(f"invalid OPSMIND_* environment variable: {exc}") from exc
