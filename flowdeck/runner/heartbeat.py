"""Keep a step's task token alive while its process runs, and notice when the execution lets go."""

from __future__ import annotations

import logging
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger("flowdeck.worker")

# Errors Step Functions answers when the task is gone: the run was stopped or a sibling failed.
TOKEN_GONE = {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"}


class Heartbeat:
    """Keeps the task token alive; notices when the execution no longer wants the step."""

    def __init__(self, sfn: Any, token: str, every: float) -> None:
        self.sfn = sfn
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
                self.sfn.send_task_heartbeat(taskToken=self.token)
            except ClientError as exc:
                if exc.response["Error"]["Code"] in TOKEN_GONE:
                    self.gone.set()
                    return
                log.warning("heartbeat failed: %s", exc.response["Error"]["Code"])
            except BotoCoreError as exc:
                log.warning("heartbeat failed: %s", exc.__class__.__name__)
