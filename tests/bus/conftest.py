"""Reaching the Redis server the Redis Streams bus is tested against, and cleaning up after it.

The server is ``OPSMIND_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). Tests that need it are
marked ``redis`` and skipped when it cannot be reached, unless ``OPSMIND_REQUIRE_REDIS=1`` (CI): then
they fail, so a missing server is never mistaken for a pass. Each test works under a prefix of its own
and deletes its keys afterwards, so it can share the server with other tests and other users.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url() -> str:
    return os.environ.get("OPSMIND_TEST_REDIS_URL", DEFAULT_REDIS_URL)


def need_redis() -> str:
    """The test server's URL; skipped when it does not answer, a failure where CI requires it."""
    url = redis_url()
    client = redis.Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=2, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"Redis not reachable at {url} (set OPSMIND_TEST_REDIS_URL): {exc}"
        if os.environ.get("OPSMIND_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis is required here (OPSMIND_REQUIRE_REDIS=1): {reason}")
        pytest.skip(reason)
    finally:
        client.close()
    return url


def new_prefix() -> str:
    return f"opsmind-test-{uuid.uuid4().hex[:12]}"


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (the streams of the topics a test used)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    """``(url, prefix)`` for a test of its own on the Redis server; its keys are deleted afterwards."""
    url = need_redis()
    prefix = new_prefix()
    yield url, prefix
    delete_prefix(url, prefix)
