"""What a run shows and leaves behind: a progress line, metrics.csv, TensorBoard events, curves PNG."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any, TextIO

COLUMNS = ("epoch", "step", "lr", "train_loss", "train_top1_err", "test_loss", "test_top1_err",
           "test_top5_err", "images_per_s", "elapsed_s")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


class Progress:
    """A one-line progress bar per epoch: loss, accuracy, images/s and ETA.

    On a terminal the line is redrawn in place (``\\r``) at most every
    ``interval`` seconds; in a log file only the finished line is written.
    """

    def __init__(self, epoch: int, epochs: int, total: int, stream: TextIO = sys.stderr, interval: float = 0.2) -> None:
        self.epoch, self.epochs, self.total = epoch, epochs, total
        self.stream, self.interval = stream, interval
        self.live = stream.isatty()
        self.start = self.last_draw = time.perf_counter()

    def line(self, done: int, loss: float, accuracy: float, images: int) -> str:
        elapsed = time.perf_counter() - self.start
        rate = images / elapsed if elapsed > 0 else 0.0
        eta = elapsed / done * (self.total - done) if done else 0.0
        width = 20
        filled = width * done // max(self.total, 1)
        bar = "#" * filled + "." * (width - filled)
        return (f"epoch {self.epoch + 1}/{self.epochs} [{bar}] {done}/{self.total} loss {loss:.4f} "
                f"acc {100 * accuracy:.2f}% {rate:.0f} img/s ETA {_clock(eta)}")

    def update(self, done: int, loss: float, accuracy: float, images: int) -> None:
        now = time.perf_counter()
        if self.live and (now - self.last_draw >= self.interval or done == self.total):
            self.stream.write("\r" + self.line(done, loss, accuracy, images))
            self.stream.flush()
            self.last_draw = now

    def finish(self, done: int, loss: float, accuracy: float, images: int, suffix: str = "") -> None:
        self.stream.write(("\r" if self.live else "") + self.line(done, loss, accuracy, images) + suffix + "\n")
        self.stream.flush()


class RunLog:
    """metrics.csv, TensorBoard events and ``curves.png`` in a run directory.

    On resume, rows after the checkpoint's step are dropped (they belong to the
    interrupted attempt) and TensorBoard purges its events after that step.
    """

    def __init__(self, run_dir: Path, resume_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = run_dir
        self.csv_path = run_dir / "metrics.csv"
        self.rows = [r for r in self._read_rows() if int(r["step"]) <= resume_step] if resume_step else []
        self._write_csv()
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=resume_step or None)

    def _read_rows(self) -> list[dict[str, Any]]:
        if not self.csv_path.is_file():
            return []
        with open(self.csv_path, newline="") as f:
            return list(csv.DictReader(f))

    def _write_csv(self) -> None:
        with open(self.csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)

    def log_epoch(self, row: dict[str, Any]) -> None:
        """Appends one epoch's row to every output and redraws the curves."""
        self.rows.append({k: row.get(k, "") for k in COLUMNS})
        with open(self.csv_path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=COLUMNS).writerow(self.rows[-1])
        for key, value in row.items():
            if key not in ("epoch", "step") and value not in ("", None):
                self.writer.add_scalar(key.replace("_", "/", 1), float(value), int(row["step"]))
        self.writer.flush()
        self.plot()

    def plot(self) -> None:
        """``curves.png``: loss and top-1 error per epoch, train and test."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        def series(key: str) -> tuple[list[float], list[float]]:
            points = [(float(r["epoch"]), float(r[key])) for r in self.rows if r.get(key) not in ("", None)]
            return [p[0] for p in points], [p[1] for p in points]

        fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(10, 4))
        for ax, metric, label in ((ax_loss, "loss", "loss"), (ax_err, "top1_err", "top-1 error (%)")):
            for split in ("train", "test"):
                ax.plot(*series(f"{split}_{metric}"), marker=".", label=split)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(self.run_dir / "curves.png", dpi=100)
        plt.close(fig)

    def close(self) -> None:
        self.writer.close()
