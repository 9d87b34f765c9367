"""The metrics every bus backend reports, by one name, help and label set, so that a dashboard or an
alert written against the in-process bus works unchanged on Redis Streams."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from opsmind.telemetry import Telemetry


@dataclass(frozen=True)
class BusMetrics:
    published: Counter
    shed: Counter
    unrouted: Counter
    redelivered: Counter
    backlog: Gauge

    @classmethod
    def of(cls, t: Telemetry) -> BusMetrics:
        """The bus metrics in ``t`` (registered on first use)."""
        return cls(
            published=t.counter(
                "opsmind_bus_published_messages_total", "Messages accepted by the bus.", ("topic",)
            ),
            shed=t.counter(
                "opsmind_bus_shed_messages_total",
                "Messages dropped because their topic was full.",
                ("topic",),
            ),
            unrouted=t.counter(
                "opsmind_bus_unrouted_messages_total",
                "Messages dropped because their topic had no consumer group.",
                ("topic",),
            ),
            redelivered=t.counter(
                "opsmind_bus_redelivered_messages_total",
                "Pending messages delivered again after their ack timeout.",
                ("topic", "group"),
            ),
            backlog=t.gauge(
                "opsmind_bus_backlog_messages",
                "Messages of a topic not yet acked by every group.",
                ("topic",),
            ),
        )
