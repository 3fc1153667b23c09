"""A one-line progress bar for a job's long steps (tuning trials, evaluated models, publish
batches), drawn on stderr only when it is a terminal: logs, Airflow and CI see nothing, and
the step's summary line (recolake.timing) follows as usual.

    with Progress("tuning", total=len(grid)) as bar:
        for trial in grid:
            ...
            bar.advance(note=f"ndcg@10={value:.4f}")
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from recolake import logs


class Progress:
    def __init__(
        self, label: str, total: int, stream: TextIO | None = None, width: int = 24
    ) -> None:
        self.label = label
        self.total = max(int(total), 0)
        self.done = 0
        self.width = width
        self.stream = stream if stream is not None else sys.stderr
        # Verbose runs log every detail instead; a bar would be torn apart by the log lines.
        self.enabled = _is_terminal(self.stream) and not logs.is_verbose()
        self._started = time.perf_counter()
        self._drawn = 0

    def __enter__(self) -> Progress:
        self._draw("")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done = min(self.done + n, self.total) if self.total else self.done + n
        self._draw(note)

    def line(self, note: str = "") -> str:
        """What the bar shows: ``label [####......] 3/8 12s note``."""
        filled = self.width * self.done // self.total if self.total else 0
        bar = "#" * filled + "." * (self.width - filled)
        seconds = time.perf_counter() - self._started
        return f"{self.label} [{bar}] {self.done}/{self.total} {seconds:.0f}s {note}".rstrip()

    def close(self) -> None:
        """Erase the bar, so the step's line takes its place."""
        if self.enabled and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0

    def _draw(self, note: str) -> None:
        if not self.enabled:
            return
        text = self.line(note)
        pad = max(self._drawn - len(text), 0)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._drawn = len(text)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False
