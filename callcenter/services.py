"""The core services one running product is made of, handed to the UI through app state."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from callcenter.audit.service import AuditService
from callcenter.bus import EventBus
from callcenter.clients import ClientService
from callcenter.config import Config
from callcenter.matching import CallerMatcher
from callcenter.reports.service import ReportService
from callcenter.routing.service import RoutingService
from callcenter.store.base import Store
from callcenter.users.service import UserService


@dataclass
class Services:
    config: Config
    store: Store
    bus: EventBus
    clients: ClientService
    matcher: CallerMatcher
    # Filled by later layers (call registry, call control); typed loosely to keep this module
    # free of imports from them.
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, config: Config, store: Store, bus: EventBus | None = None) -> Services:
        return cls(
            config=config,
            store=store,
            bus=bus or EventBus(),
            clients=ClientService(store, config.phones),
            matcher=CallerMatcher(store.caller_index, config.phones),
        )

    @cached_property
    def audit(self) -> AuditService:
        """Every change through the API or the command line is recorded here."""
        return AuditService(self.store)

    @cached_property
    def users(self) -> UserService:
        users = UserService(self.store, self.audit)
        users.on_change = self.routing.rebuild  # groups count enabled secretaries only
        return users

    @cached_property
    def reports(self) -> ReportService:
        """Reports over the call log, tasks, SMS and faxes; periods in the office's zone."""
        settings = self.config.reports

        def timezone() -> str:
            hours = self.routing.hours
            return settings.timezone or (hours.timezone if hours else self.config.sms.timezone)

        return ReportService(self.store, timezone=timezone,
                             callback_sla_minutes=settings.callback_sla_minutes,
                             office_hours=lambda: self.routing.hours,
                             managers_see_all_clients=(
                                 self.config.console.managers_see_all_clients))

    @cached_property
    def routing(self) -> RoutingService:
        """Who gets which screen-pops, office hours, the default region (loaded at start)."""
        return RoutingService(self.store, self.audit, self.config.phones)
