"""Opening the bus that ``bus.backend`` names.

``memory`` (the embedded default) lives in the engine's process; ``redis`` puts every topic in a Redis
stream, so that several engine processes can share the work of one consumer group and nothing accepted is
lost when one of them stops. Both pass the same contract suite (tests/bus/test_bus_contract.py).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from opsmind.bus.memory import MemoryBus
from opsmind.bus.protocols import Bus
from opsmind.clock import Clock
from opsmind.config import BusSettings
from opsmind.telemetry import Telemetry


def open_bus(settings: BusSettings, telemetry: Telemetry, clock: Clock) -> Bus:
    """The bus of ``settings.backend``."""
    if settings.backend == "redis":
        from opsmind.bus.redis_streams import RedisBus

        return RedisBus(settings, telemetry, clock, url=settings.redis_url, prefix=settings.redis_prefix)
    return MemoryBus(settings, telemetry, clock)


def check_reachable(settings: BusSettings, timeout_s: float = 5.0) -> None:
    """Ping the Redis server of ``settings.redis_url``, changing nothing. ConnectionError naming the URL
    when it cannot be reached."""
    import redis

    client = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        where = redacted(settings.redis_url)
        raise ConnectionError(f"bus.redis_url {where}: cannot reach Redis: {exc}") from exc
    finally:
        client.close()


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
