"""What a run leaves behind: metrics.csv, TensorBoard events, curves PNG (progress: :mod:`cnnlab.progress`)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from cnnlab.files import atomic_write_csv


def format_metric(key: str, value: float) -> str:
    """A metric as every command prints it: accuracies and errors (fractions in the files)
    in %, with three significant digits below 0.1% (U-Net's warping error is about 0.04%);
    losses to four decimals; anything else, a rate such as ``sent_per_s``, as a number."""
    if key.endswith(("accuracy", "_err")):
        percent = 100 * value
        return f"{percent:.2f}%" if percent == 0 or abs(percent) >= 0.1 else f"{percent:.3g}%"
    if key.endswith("loss"):
        return f"{value:.4f}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"


def format_metrics(row: dict[str, Any], columns: tuple[str, ...]) -> str:
    """`` | test loss 0.41 top1 err 8.75%``: the evaluation metrics of a row (see
    :func:`format_metric`); empty when the row has none."""
    parts = [f"{key.replace('_', ' ')} {format_metric(key, row[key])}" for key in columns if key in row]
    return " | " + ", ".join(parts) if parts else ""


class RunLog:
    """metrics.csv, TensorBoard events and ``curves.png`` in a run directory.

    On resume, rows after the checkpoint's step are dropped (they belong to the
    interrupted attempt) and TensorBoard purges its events after that step.
    """

    def __init__(self, run_dir: Path, columns: tuple[str, ...], resume_step: int = 0, title: str = "",
                 best_metric: str = "") -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir, self.columns, self.title = run_dir, columns, title or run_dir.name
        self.best_metric = best_metric
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
        atomic_write_csv(self.csv_path, self.columns, self.rows)

    def log_epoch(self, row: dict[str, Any]) -> None:
        """Appends one epoch's row to every output and redraws the curves."""
        self.rows.append({k: row.get(k, "") for k in self.columns})
        self._write_csv()
        for key, value in row.items():
            if key not in ("epoch", "step") and value not in ("", None):
                self.writer.add_scalar(key.replace("_", "/", 1), float(value), int(row["step"]))
        self.writer.flush()
        self.plot()

    def plot(self) -> None:
        """``curves.png``: the losses (log scale), the task's errors or accuracies (%) with the
        best evaluation marked, and the learning rate, per epoch."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        def series(key: str, scale: float = 1.0) -> tuple[list[float], list[float]]:
            points = [(float(r["epoch"]), scale * float(r[key])) for r in self.rows if r.get(key) not in ("", None)]
            return [p[0] for p in points], [p[1] for p in points]

        fig, (ax_loss, ax_metric, ax_lr) = plt.subplots(1, 3, figsize=(14, 4))
        for key in (c for c in self.columns if c.endswith("_loss")):
            ax_loss.plot(*series(key), marker=".", label=key.replace("_", " "))
        ax_loss.set_yscale("log")  # one early spike would otherwise flatten the rest
        ax_loss.set_ylabel("loss (log scale)")
        for key in (c for c in self.columns if c.endswith(("_err", "_accuracy"))):
            ax_metric.plot(*series(key, 100), marker=".", label=key.replace("_", " "))
        epochs, values = series(self.best_metric, 100) if self.best_metric in self.columns else ([], [])
        if values:
            pick = max if self.best_metric.endswith("accuracy") else min
            best = values.index(pick(values))
            ax_metric.plot(epochs[best], values[best], "k*", markersize=14,
                           label=f"best {self.best_metric.replace('_', ' ')} {values[best]:.2f}%")
        ax_metric.set_ylabel("%")
        ax_lr.plot(*series("lr"), marker=".", color="tab:gray")
        ax_lr.set_ylabel("learning rate (at the epoch's end)")
        for ax in (ax_loss, ax_metric, ax_lr):
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
        fig.suptitle(self.title)
        fig.tight_layout()
        fig.savefig(self.run_dir / "curves.png", dpi=100)
        plt.close(fig)

    def close(self) -> None:
        self.writer.close()
