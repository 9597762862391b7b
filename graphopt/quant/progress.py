"""A one-line progress bar with ETA on stderr (no dependency): `12/32 [=====    ] 37% ETA 4s`.

On a terminal the line is redrawn in place (`\\r`, at most 5×/s). Elsewhere (a log file, a CI
console) a redraw would pile up as text, so a full line is written at most every
`LOG_INTERVAL` seconds. The line ends (newline) as soon as the last item is done: what runs
after the calibration (the accuracy search) neither adds to its elapsed time nor writes its
warnings onto the bar's line.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

LOG_INTERVAL = 10.0  # seconds between lines when the stream is not a terminal


class Progress:
    """Call `update(done)` as work completes and `close()` at the end; redraws at most 5×/s."""

    def __init__(
        self,
        total: int | None,
        label: str = "calibrating",
        stream: TextIO | None = None,
        *,
        units: tuple[str, str] | None = None,
        show_start: bool = False,
    ):
        """`total` None: a count without bar or ETA, "label: N unit, elapsed Ts" with `units`,
        the unit for one and for any other count (("model measured", "models measured")).
        `show_start`: `update(0)` draws the line at once (work of unknown length: the user
        sees that it started, also in a log)."""
        self.total = total
        self.label = label
        self.units = units
        self.show_start = show_start
        # None where the process has no stderr (closed: `2>&-`, or pythonw): nothing is drawn
        self.stream: TextIO | None = stream or sys.stderr
        self.start = time.perf_counter()
        self.last = 0.0
        self.done = 0
        self.drawn = False
        self.finished = False  # the line has ended
        self.open = False  # a terminal line drawn without its newline
        self.shown = -1  # the count the last line written showed
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = bool(isatty and isatty())

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if done == 0:  # (re)start the clock when the work itself starts
            self.start = self.last = now
            if self.show_start and not self.finished:
                self._write(self.line(now), end=False)
            return
        self.done = done
        last = self.total is not None and done >= self.total
        if self.finished:
            return
        interval = 0.2 if self.terminal else LOG_INTERVAL
        if now - self.last < interval and not last:
            return
        self.last = now
        self._write(self.line(now), end=last)

    def _write(self, text: str, end: bool) -> None:
        if self.stream is None:  # (its first write raised AttributeError and failed the run)
            return
        if self.terminal:
            self.stream.write("\r" + text + ("\n" if end else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.drawn = True
        self.finished = end
        self.open = self.terminal and not end
        self.shown = self.done

    @contextmanager
    def lines_end_before_logs(self, logger: str) -> Iterator[None]:
        """While inside: a record logged on `logger` first ends a terminal line the bar left
        open, so a warning is not written onto the bar (which goes on, on a line of its own)."""
        bar = self

        class EndLine(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                if bar.open and bar.stream is not None:
                    bar.stream.write("\n")
                    bar.stream.flush()
                    bar.open = False
                return True

        end_line = EndLine()
        logging.getLogger(logger).addFilter(end_line)
        try:
            yield
        finally:
            logging.getLogger(logger).removeFilter(end_line)

    def line(self, now: float) -> str:
        elapsed = now - self.start
        if self.total is None and self.units:
            unit = self.units[self.done != 1]
            return f"{self.label}: {self.done} {unit}, elapsed {elapsed:.0f}s"
        if not self.total:
            return f"{self.label} {self.done} [{elapsed:.0f}s]"
        share = min(self.done / self.total, 1.0)
        bar = "=" * int(share * 24)
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        return (
            f"{self.label} {self.done}/{self.total} [{bar:<24}] {share:4.0%} "
            f"elapsed {elapsed:.0f}s ETA {eta:.0f}s"
        )

    def close(self) -> None:
        """End the line (the total was not reached, or is unknown) unless it has ended, or a
        log record ended it after it showed the last count (no line twice)."""
        if self.drawn and not self.finished and (self.open or self.shown != self.done):
            self._write(self.line(time.perf_counter()), end=True)
