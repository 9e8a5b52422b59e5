"""One handle per long-lived librdkafka client that may have to be replaced.

A client left holding no broker never gets one back (``kafka_health``): only a new client does. The handle
owns what a replacement needs: the client's configuration (statistics fed to its :class:`BrokerLoss`), the
factory that makes a client from it, and the hook that hands over from the old client to the new one
(close it, leave its group, move its queued records). Callers ask :attr:`RenewableClient.client` every
time they use the client and never keep it, so a replacement reaches everyone at once.

Usage::

    probe = RenewableClient("lag-probe", config, Consumer, on_renew=lambda old, new: old.close())
    probe.client.poll(0)  # serves the statistics that say whether it still holds a broker
    probe.renew_if_orphaned(time.monotonic())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from streamwatch_common.kafka_health import BrokerLoss

Client = TypeVar("Client")


class RenewableClient(Generic[Client]):
    """A client behind a handle that replaces it once it has held no broker for the grace period."""

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        factory: Callable[[dict[str, Any]], Client],
        *,
        on_renew: Callable[[Client, Client], None] | None = None,
        coordinator: bool = False,
    ) -> None:
        self.loss = BrokerLoss(name, coordinator=coordinator)
        self.config = self.loss.configure(config)
        self._factory = factory
        self._on_renew = on_renew
        self._client = factory(self.config)

    @property
    def client(self) -> Client:
        """The current client; ask again at each use, a renewal replaces it."""
        return self._client

    def renew_if_orphaned(self, now: float) -> bool:
        """Replace the client if it has held no broker, or (watching its group) no coordinator, long enough;
        True when it was replaced."""
        reason = self.loss.reason(now)
        if reason is None:
            return False
        self.renew(reason)
        return True

    def renew(self, reason: str) -> None:
        """Make a new client and hand over to it: the hook runs while :attr:`client` is still the old one
        (whatever the old one calls back while it closes reaches the old one), then the new one serves."""
        old = self._client
        new = self._factory(self.config)
        if self._on_renew is not None:
            self._on_renew(old, new)
        self._client = new
        self.loss.renewed(reason)
