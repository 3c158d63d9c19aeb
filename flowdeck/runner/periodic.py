"""A thread that does one thing every few seconds while a `with` block runs (heartbeats, leases)."""

from __future__ import annotations

import threading
from typing import Self


class Periodic:
    """Calls `beat()` every `every` seconds from a thread, until the block ends or `beat()` says stop."""

    def __init__(self, every: float, name: str, at_once: bool = False) -> None:
        """`at_once`: the first beat comes as the block starts, not `every` seconds in."""
        self.every = every
        self.at_once = at_once
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
        if self.at_once and not self.beat():
            return
        while not self._done.wait(self.every):
            if not self.beat():
                return
