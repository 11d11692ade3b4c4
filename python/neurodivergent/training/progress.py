"""A dependency-free progress bar: drawn on stderr only when it is a terminal, silent otherwise."""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class Progress:
    def __init__(self, total: Optional[int], desc: str = "", enabled: bool = True,
                 stream: Optional[TextIO] = None, min_interval: float = 0.1):
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = bool(enabled) and bool(isatty())
        self.total = total
        self.desc = desc
        self.n = 0
        self.postfix = ""
        self._t0 = time.perf_counter()
        self._last = 0.0
        self.min_interval = min_interval

    def update(self, n: int = 1, postfix: str = "") -> None:
        self.n += n
        if postfix:
            self.postfix = postfix
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last >= self.min_interval or (self.total and self.n >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        el = now - self._t0
        if self.total:
            frac = min(1.0, self.n / self.total)
            width = 24
            bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
            eta = el / frac - el if frac > 0 else 0.0
            line = f"{self.desc} [{bar}] {self.n}/{self.total} {el:.1f}s<{eta:.1f}s {self.postfix}"
        else:
            line = f"{self.desc} {self.n} {el:.1f}s {self.postfix}"
        self.stream.write("\r" + line[:150].ljust(80))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()
