"""Keep a step's task token alive while its process runs, and notice when the execution lets go."""

from __future__ import annotations

import logging
import threading

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.runner.periodic import Periodic
from flowdeck.stores.tasks import TaskTokens

log = logging.getLogger("flowdeck.worker")


class Heartbeat(Periodic):
    """Keeps the task token alive; notices when the execution no longer wants the step."""

    def __init__(self, tokens: TaskTokens, token: str, every: float, waited: float | None = None) -> None:
        """`waited`: seconds since the token was issued (its message sent); None when not known.

        The token's heartbeat clock runs from then: the first beat is due `every` seconds after it,
        at once for a step that waited in the queue that long (or for how long is not known).
        """
        super().__init__(every, name="heartbeat", first_after=0.0 if waited is None else every - waited)
        self.tokens = tokens
        self.token = token
        self.gone = threading.Event()

    def beat(self) -> bool:
        try:
            if not self.tokens.heartbeat(self.token):  # the run was stopped or a sibling failed
                self.gone.set()
                return False
        except ClientError as exc:
            log.warning("heartbeat failed: %s", exc.response["Error"]["Code"])
        except BotoCoreError as exc:
            log.warning("heartbeat failed: %s", exc.__class__.__name__)
        return True
