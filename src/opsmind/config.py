"""Settings: one YAML file plus ``OPSMIND_*`` environment overrides, validated at start-up.

Environment variables override the file, nested keys joined by ``__``: ``OPSMIND_API__PORT=9090`` sets
``api.port``. Unknown keys are errors, so a typo is caught instead of silently ignored. A bad file raises
:class:`ConfigError` whose message names every bad key and why.
"""

from __future__ import annotations

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
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class ConfigError(ValueError):
    """The configuration is invalid; ``str(err)`` lists ``key.path: reason`` lines."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StorageSettings(_Section):
    backend: Literal["sqlite"] = "sqlite"
    path: str = Field("opsmind.db", description="SQLite file; ':memory:' keeps nothing on disk")
    raw_retention_s: float = Field(2 * 86400, gt=0, description="keep raw samples this long")
    minute_retention_s: float = Field(14 * 86400, gt=0, description="keep 1-minute rollups this long")
    hour_retention_s: float = Field(400 * 86400, gt=0, description="keep 1-hour rollups this long")
    maintenance_interval_s: float = Field(60, gt=0, description="how often rollups and retention run")

    @model_validator(mode="after")
    def _retention_order(self) -> StorageSettings:
        if not self.raw_retention_s <= self.minute_retention_s <= self.hour_retention_s:
            raise ValueError("retention must grow with resolution: raw <= minute <= hour")
        return self


Overflow = Literal["block", "shed"]


def _default_topic_overflow() -> dict[str, Overflow]:
    return {"samples": "shed"}


class BusSettings(_Section):
    backend: Literal["memory"] = "memory"
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


class ScrapeTarget(_Section):
    url: HttpUrl
    interval_s: float = Field(15, gt=0)
    timeout_s: float = Field(10, gt=0)
    labels: dict[str, str] = Field(default_factory=dict, description="added to every scraped series")


class DetectSettings(_Section):
    enabled: bool = True
    threshold: float = Field(
        0.99999, gt=0, lt=1, description="anomaly probability at or above which a point is anomalous"
    )
    relearn_after: int = Field(
        10, ge=1, description="consecutive anomalous points after which a lasting shift is learned as normal"
    )
    multivariate: bool = Field(
        True, description="also score each service's golden signals together (IsolationForest per service)"
    )


class IncidentSettings(_Section):
    group_window_s: float = Field(
        300, gt=0, description="anomalies of a service this close form one incident"
    )
    min_anomalies: int = Field(
        2, ge=1, description="anomalies of a service within the group window before an incident opens"
    )
    resolve_after_s: float = Field(600, gt=0, description="resolve when no anomaly arrived for this long")
    check_interval_s: float = Field(15, gt=0)
    root_cause: bool = Field(True, description="rank likely root-cause services when an incident opens")
    root_cause_lookback_s: float = Field(
        1800, gt=0, description="metrics before the first anomaly that count as normal for ranking"
    )
    topology: dict[str, list[str]] = Field(
        default_factory=dict, description="service -> services it calls, for root-cause ranking"
    )


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


class NotifySettings(_Section):
    log: bool = True
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    slack: list[SlackSettings] = Field(default_factory=list)
    alertmanagers: list[AlertmanagerSettings] = Field(default_factory=list)


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)

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
    detect: DetectSettings = Field(default_factory=DetectSettings)
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

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


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read ``path`` (YAML) if given, apply environment overrides, validate, and return settings."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from exc
        try:
            loaded = yaml.safe_load(text)
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
    try:
        return Settings(**data)
    except ValidationError as exc:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}invalid configuration\n{format_validation_error(exc)}") from exc
