"""Keep a step's task token alive while its process runs, and notice when the execution lets go."""

from __future__ import annotations

import logging
import threading

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.stores.tasks import TaskTokens

log = logging.getLogger("flowdeck.worker")


class Heartbeat:
    """Keeps the task token alive; notices when the execution no longer wants the step."""

    def __init__(self, tokens: TaskTokens, token: str, every: float) -> None:
        self.tokens = tokens
        self.token = token
        self.every = every
        self.gone = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._done.wait(self.every):
            try:
                if not self.tokens.heartbeat(self.token):  # the run was stopped or a sibling failed
                    self.gone.set()
                    return
            except ClientError as exc:
                log.warning("heartbeat failed: %s", exc.response["Error"]["Code"])
            except BotoCoreError as exc:
                log.warning("heartbeat failed: %s", exc.__class__.__name__)
