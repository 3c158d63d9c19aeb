"""A thread that does one thing every few seconds while a `with` block runs (heartbeats, leases)."""

from __future__ import annotations

import threading
from typing import Self


class Periodic:
    """Calls `beat()` every `every` seconds from a thread, until the block ends or `beat()` says stop."""

    def __init__(self, every: float, name: str, first_after: float | None = None) -> None:
        """`first_after`: seconds to the first beat (0: as the block starts), `every` when None."""
        self.every = every
        self.first_after = first_after
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def beat(self) -> bool:
        """One beat; False stops the thread (what it kept alive is gone)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        first = self.every if self.first_after is None else max(self.first_after, 0.0)
        if self._done.wait(first) or not self.beat():
            return
        while not self._done.wait(self.every):
            if not self.beat():
                return
