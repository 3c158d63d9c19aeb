"""What the WebSocket and fan-out handlers depend on: one LiveService per container, built lazily."""

from __future__ import annotations

from flowdeck.config import get_settings, per_settings
from flowdeck.live.poster import ConnectionsApi
from flowdeck.live.service import LiveService
from flowdeck.stores.connections import Connections
from flowdeck.stores.logs import LogStore
from lambdas.deps import run_service


@per_settings
def live_service() -> LiveService:
    """The live view over the connections and logs tables and the @connections API."""
    settings = get_settings()
    return LiveService(
        Connections(settings.connections_table),
        LogStore(settings.logs_table),
        run_service(),
        ConnectionsApi(settings.websocket_endpoint),
    )
