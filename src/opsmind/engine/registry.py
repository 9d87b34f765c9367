"""The service registry: services made known by a person or a tool, beside those discovered from the
``service`` label of stored series.

A registration says what a service is (``service_type``: the kind the fault classifier reads, as
``heal.inventory`` declares it), who owns it, and where its metrics are. A service with a
``metrics_url`` is scraped from the moment it is registered (no restart), like a configured
``scrape`` target, its series labelled ``service=<name>`` and ``job=<name>`` plus its own labels;
changing the URL moves the scrape, deregistering stops it (the data stays). Registrations are records in
the event store (``ServiceRegistration``, id = the service's name), so they survive a restart:
:meth:`ServiceRegistry.load` resumes their scrapes when the engine starts. Every change is audited with
who and why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

from pydantic import ValidationError

from opsmind.clock import Clock
from opsmind.config import ScrapeTarget
from opsmind.ingest.scrape import Scraper, TargetStatus
from opsmind.store.protocols import EventStore
from opsmind.types import AuditEntry, ServiceRegistration

log = logging.getLogger(__name__)

MAX_REGISTRATIONS = 10_000
DISCOVERED_BY_KUBERNETES = "discovery:kubernetes"  # the ``by`` of what Kubernetes discovery registers
SCRAPE_TIMEOUT_S = 10.0


def scrape_target(reg: ServiceRegistration) -> ScrapeTarget | None:
    """The scrape target of a registration (None without a metrics URL); ValueError says what is wrong
    with the URL."""
    if reg.metrics_url is None:
        return None
    try:
        return ScrapeTarget(
            url=reg.metrics_url,  # validated into an HttpUrl here
            interval_s=reg.scrape_interval_s,
            timeout_s=min(SCRAPE_TIMEOUT_S, reg.scrape_interval_s),
            labels={**reg.labels, "service": reg.id, "job": reg.labels.get("job", reg.id)},
        )
    except ValidationError as exc:
        raise ValueError(f"metrics_url {reg.metrics_url!r}: {exc.errors()[0]['msg']}") from None


class ServiceRegistry:
    """Registrations in ``store``, their metrics scraped by ``scraper`` (the engine's)."""

    def __init__(
        self,
        store: EventStore,
        scraper: Scraper,
        clock: Clock,
        configured: frozenset[str] = frozenset(),
        on_change: Callable[[Mapping[str, ServiceRegistration]], object] | None = None,
    ) -> None:
        self.store = store
        self.scraper = scraper
        self.clock = clock
        self.configured = configured  # the URLs of the configured scrape targets: not the registry's
        # Told the registrations after each load and change (the engine keeps its call graph in line).
        self.on_change = on_change
        # One change at a time: a registration read, stored and its scrape moved by one request must not
        # interleave with another's (a PUT racing a DELETE left a scrape that no registration owned).
        self._lock = asyncio.Lock()

    def registered(self) -> dict[str, ServiceRegistration]:
        """The services registered now, by name (blocking: a store read)."""
        found = self.store.find(ServiceRegistration, status="registered", limit=MAX_REGISTRATIONS)
        return {r.id: r for r in found}

    def get(self, name: str) -> ServiceRegistration | None:
        """The registration of ``name`` if it is registered now (blocking)."""
        reg = self.store.get(ServiceRegistration, name)
        return reg if reg is not None and reg.status == "registered" else None

    def scrape_status(self, reg: ServiceRegistration) -> TargetStatus | None:
        """The latest scrape of a registration's metrics URL (None: none yet, or no URL)."""
        target = scrape_target(reg)
        return None if target is None else self.scraper.status.get(str(target.url))

    async def load(self) -> int:
        """Resume the scrapes of every registered service (at start); how many there are."""
        regs = await asyncio.to_thread(self.registered)
        for reg in regs.values():
            target = scrape_target(reg)
            if target is not None:
                self.scraper.add(target)
        self._changed(regs)
        return len(regs)

    def _changed(self, regs: Mapping[str, ServiceRegistration]) -> None:
        if self.on_change is not None:
            self.on_change(regs)

    async def register(self, reg: ServiceRegistration, why: str) -> tuple[ServiceRegistration, bool]:
        """Store ``reg`` (a new registration, or a change of one) and scrape its metrics URL from now on;
        whether it is new. ValueError: its URL or labels cannot be scraped, or another service's
        registration has the same URL (nothing is stored)."""
        async with self._lock:
            out = await self._register(reg, why)
            self._changed(await asyncio.to_thread(self.registered))
            return out

    async def _register(self, reg: ServiceRegistration, why: str) -> tuple[ServiceRegistration, bool]:
        target = scrape_target(reg)
        current = await asyncio.to_thread(self.registered)
        if target is not None:
            self.scraper.check(target)
            url = str(target.url)
            if url in self.configured:
                raise ValueError(f"metrics_url {url} is already scraped as a configured target (scrape)")
            # The scraper keeps one loop per URL: a second service on it would take the first one's scrape
            # over, and deregistering either would stop both.
            for other in current.values():
                theirs = scrape_target(other) if other.id != reg.id else None
                if theirs is not None and str(theirs.url) == url:
                    raise ValueError(f"metrics_url {url} is already scraped for service {other.id!r}")
        before = current.get(reg.id)
        verb = "service_register" if before is None else "service_update"
        audit = AuditEntry(
            at=reg.at,
            service=reg.id,
            actor=reg.by,
            verb=verb,
            subject=reg.id,
            detail={"why": why, **reg.model_dump(mode="json", exclude={"id", "at", "service", "by"})},
        )
        await asyncio.to_thread(self.store.put_many, [reg, audit])
        old = scrape_target(before) if before is not None else None
        if old is not None and (target is None or str(old.url) != str(target.url)):
            self.scraper.remove(str(old.url))
        if target is not None:
            self.scraper.add(target)
        return reg, before is None

    async def deregister(self, name: str, by: str, why: str) -> ServiceRegistration | None:
        """Stop scraping ``name`` and mark it removed (its data stays); None when it is not registered."""
        async with self._lock:
            out = await self._deregister(name, by, why)
            if out is not None:
                self._changed(await asyncio.to_thread(self.registered))
            return out

    async def _deregister(self, name: str, by: str, why: str) -> ServiceRegistration | None:
        reg = await asyncio.to_thread(self.get, name)
        if reg is None:
            return None
        now = self.clock.now()
        removed = reg.model_copy(update={"status": "removed", "at": now, "by": by})
        audit = AuditEntry(
            at=now, service=name, actor=by, verb="service_deregister", subject=name, detail={"why": why}
        )
        await asyncio.to_thread(self.store.put_many, [removed, audit])
        target = scrape_target(reg)
        if target is not None:
            self.scraper.remove(str(target.url))
        return removed

    async def sync(self, source: str, found: Sequence[ServiceRegistration]) -> tuple[list[str], list[str]]:
        """Make what ``source`` (a discovery, e.g. ``discovery:kubernetes``) registered match ``found``:
        new and changed services registered, vanished ones deregistered. A service someone else
        registered (a person, another discovery) is theirs and left as it is. Returns the names
        registered or changed and those removed; one that cannot be registered is logged and skipped."""
        async with self._lock:
            changed, removed = await self._sync(source, found)
            if changed or removed:
                self._changed(await asyncio.to_thread(self.registered))
            return changed, removed

    async def _sync(self, source: str, found: Sequence[ServiceRegistration]) -> tuple[list[str], list[str]]:
        current = await asyncio.to_thread(self.registered)
        changed: list[str] = []
        for reg in found:
            have = current.get(reg.id)
            if have is not None and (have.by != source or _same(have, reg)):
                continue
            try:
                await self._register(reg, f"found by {source}")
            except ValueError as exc:
                log.warning("%s: service %s not registered: %s", source, reg.id, exc)
                continue
            changed.append(reg.id)
        names = {r.id for r in found}
        removed = [n for n, have in current.items() if have.by == source and n not in names]
        for name in removed:
            await self._deregister(name, source, f"no longer found by {source}")
        return changed, removed


def _same(a: ServiceRegistration, b: ServiceRegistration) -> bool:
    """The same registration, whoever made it and when."""
    keep = {"service_type", "owner", "metrics_url", "scrape_interval_s", "labels", "status", "depends_on"}
    return a.model_dump(include=keep) == b.model_dump(include=keep)
