"""Progress on every long command: one line, redrawn in place on a terminal, written once
per stage in a log.

Training draws one per epoch (loss, accuracy, samples/s, ETA); evaluation one per pass
over a test split. A long step that comes before any such line (decoding a dataset for
the first time, loading an ensemble, U-Net's tiled inference) says so first with
:func:`announce`, so that no command is silent for more than a few seconds.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def announce(message: str, stream: TextIO | None = None) -> None:
    """Says, at once, that a long step begins (standard error by default)."""
    stream = stream or sys.stderr
    stream.write(message + "\n")
    stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


class Progress:
    """A one-line progress bar: ``LABEL [####....] done/total loss ... rate ETA``.

    On a terminal the line is redrawn in place (``\\r``) at most every
    ``interval`` seconds; in a log file only the finished line is written.

    Args:
        label: what is in progress, e.g. "epoch 3/90" or "10crop test".
        total: steps (batches) in all.
        unit: what a sample is called in the rate ("img", "sent", "tile").
        stream: where the line goes (standard error by default).
    """

    def __init__(self, label: str, total: int, unit: str = "img", stream: TextIO | None = None,
                 interval: float = 0.2) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.stream, self.interval = stream or sys.stderr, interval
        self.live = self.stream.isatty()
        self.start = self.last_draw = time.perf_counter()
        self.done, self.loss, self.values, self.samples = 0, None, {}, 0
        if self.live:  # drawn at once, not after the first step: a slow first step is no silence
            self.stream.write(self.line())
            self.stream.flush()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.samples / elapsed if elapsed > 0 else 0.0
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        width = 20
        filled = width * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (width - filled)
        loss = f" loss {self.loss:.4f}" if self.loss is not None else ""
        values = "".join(f" {k} {v}" for k, v in self.values.items())
        return (f"{self.label} [{bar}] {self.done}/{self.total}{loss}{values} {rate:.0f} {self.unit}/s "
                f"ETA {_clock(eta)}")

    def update(self, done: int, samples: int, loss: float | None = None, values: dict[str, str] | None = None
               ) -> None:
        self.done, self.samples, self.loss, self.values = done, samples, loss, values or {}
        now = time.perf_counter()
        if self.live and (now - self.last_draw >= self.interval or done == self.total):
            self.stream.write("\r" + self.line())
            self.stream.flush()
            self.last_draw = now

    def finish(self, suffix: str = "") -> None:
        self.stream.write(("\r" if self.live else "") + self.line() + suffix + "\n")
        self.stream.flush()
