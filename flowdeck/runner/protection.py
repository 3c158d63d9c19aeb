"""ECS task scale-in protection for a pool worker: on while it holds work, renewed, off when idle.

A scale-in or a deploy stops unprotected tasks only, so a worker that holds a step is never the one
ECS picks. The ECS agent's endpoint (`$ECS_AGENT_URI/task-protection/v1/state`) calls
UpdateTaskProtection with the task role's credentials. Without ECS_AGENT_URI (the local stack,
tests) there is nothing to protect and the keeper does nothing.

The calls happen on the keeper's own thread, never on a step's path: a step taken in the instant
before its protection lands is still safe, as a stopping worker finishes or hands back what it
holds (flowdeck.runner.worker).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

log = logging.getLogger("flowdeck.worker")

PROTECTION_PATH = "/task-protection/v1/state"
# Each renewal protects the task this long; a worker that hangs or dies loses it by then.
PROTECT_MINUTES = 15
RENEW_EVERY_SECONDS = 5 * 60.0
# Kept a little after the last step ends: sequential steps of a run do not flip it each time.
RELEASE_AFTER_IDLE_SECONDS = 10.0
# After a refused or failed call, try again this soon.
RETRY_SECONDS = 10.0
AGENT_TIMEOUT_SECONDS = 5.0


class AgentEndpoint:
    """The ECS agent's task protection endpoint; `put` says whether the agent set the state."""

    def __init__(self, agent_uri: str, timeout: float = AGENT_TIMEOUT_SECONDS) -> None:
        self.http = httpx.Client(base_url=agent_uri.rstrip("/"), timeout=timeout)

    def put(self, enabled: bool, minutes: int = PROTECT_MINUTES) -> bool:
        body: dict[str, object] = {"ProtectionEnabled": enabled}
        if enabled:
            body["ExpiresInMinutes"] = minutes
        try:
            answer = self.http.put(PROTECTION_PATH, json=body)
            data = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("task protection %s: the ECS agent did not answer: %s", _word(enabled), exc)
            return False
        # The agent answers {"protection": {...}}, or {"failure": {...}} / {"error": {...}} with a 4xx/5xx.
        if answer.is_success and isinstance(data, dict) and isinstance(data.get("protection"), dict):
            return True
        problem = data.get("failure") or data.get("error") if isinstance(data, dict) else data
        log.warning("task protection %s refused (%s): %s", _word(enabled), answer.status_code, problem)
        return False

    def close(self) -> None:
        self.http.close()


def _word(enabled: bool) -> str:
    return "on" if enabled else "off"


class ScaleInProtection:
    """Counts the work a worker holds; a keeper thread keeps the task protected while it holds any."""

    def __init__(
        self,
        agent: AgentEndpoint | None,
        renew_every: float = RENEW_EVERY_SECONDS,
        release_after: float = RELEASE_AFTER_IDLE_SECONDS,
        retry_every: float = RETRY_SECONDS,
    ) -> None:
        self.agent = agent
        self.renew_every = renew_every
        self.release_after = release_after
        self.retry_every = retry_every
        self.held = 0
        self.protected = False
        self._idle_since = time.monotonic()
        # When protection is next renewed, and (after a refused call) when the agent is next asked.
        self._renew_at = 0.0
        self._retry_at = 0.0
        self._changed = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        if agent is not None:
            self._thread = threading.Thread(target=self._keep, daemon=True, name="scale-in-protection")
            self._thread.start()

    @classmethod
    def for_agent(cls, agent_uri: str) -> ScaleInProtection:
        """Protection through the agent at `agent_uri`; a no-op without one (not on ECS)."""
        return cls(AgentEndpoint(agent_uri) if agent_uri else None)

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Protected while the block runs (and a little after the last block ends)."""
        with self._changed:
            self.held += 1
            self._changed.notify()
        try:
            yield
        finally:
            with self._changed:
                self.held -= 1
                if self.held == 0:
                    self._idle_since = time.monotonic()
                self._changed.notify()

    def close(self) -> None:
        """Stop the keeper and turn protection off: a worker that leaves holds nothing."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        if self._thread is not None:
            self._thread.join(timeout=AGENT_TIMEOUT_SECONDS * 2)
        if self.agent is not None:
            if self.protected:
                self.protected = not self.agent.put(False)
            self.agent.close()

    def _keep(self) -> None:
        while True:
            with self._changed:
                if self._closed:
                    return
                wait = self._due_in(time.monotonic())
                if wait is None or wait > 0:
                    self._changed.wait(wait)  # woken early by a step taken or ended, or close()
                    continue
                held = self.held > 0
            self._call(held)

    def _due_in(self, now: float) -> float | None:
        """Seconds until the next call to the agent is due (0: now), None while there is nothing to do."""
        if self.held:
            due = self._renew_at if self.protected else self._retry_at
        elif self.protected:
            due = max(self._idle_since + self.release_after, self._retry_at)
        else:
            return None
        return max(due - now, 0.0)

    def _call(self, enable: bool) -> None:
        assert self.agent is not None  # noqa: S101 - the keeper runs only with an agent
        now = time.monotonic()
        if self.agent.put(enable):
            self.protected = enable
            self._renew_at = now + self.renew_every
            self._retry_at = 0.0
        else:
            self._retry_at = now + self.retry_every
