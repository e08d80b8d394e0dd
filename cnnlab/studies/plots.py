"""The figures studies draw: curves averaged over seeds, bars with error bars, tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cnnlab.studies.framework import Run
from cnnlab.studies.verdicts import mean_std


def curves(ax: Any, runs: Mapping[str, Sequence[Run]], key: str, labels: Mapping[str, str] | None = None, *,
           scale: float = 100.0, style: str = "-") -> None:
    """Each arm's ``key`` per epoch: the mean over seeds, with the seeds' range shaded. An
    arm keeps its colour across calls (training dotted, test solid, say)."""
    for index, (arm, arm_runs) in enumerate(runs.items()):
        series = [r.series(key) for r in arm_runs]
        length = min(len(s[0]) for s in series)
        if length == 0:
            continue
        epochs = series[0][0][:length]
        columns = [[scale * s[1][i] for s in series] for i in range(length)]
        mean = [sum(c) / len(c) for c in columns]
        ax.plot(epochs, mean, style, marker=".", color=f"C{index}", label=(labels or {}).get(arm, arm))
        if len(series) > 1:
            ax.fill_between(epochs, [min(c) for c in columns], [max(c) for c in columns], color=f"C{index}",
                            alpha=0.2)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)


def bars(ax: Any, values: Mapping[str, Sequence[float]], ylabel: str, *, scale: float = 1.0) -> None:
    """One bar per arm at the mean, the standard deviation as an error bar, each seed a dot."""
    names = list(values)
    for i, name in enumerate(names):
        mean, std = mean_std([scale * v for v in values[name]])
        ax.bar(i, mean, yerr=std, capsize=4, color=f"C{i}", alpha=0.7)
        ax.plot([i] * len(values[name]), [scale * v for v in values[name]], "k.", markersize=5)
    crowded = len(names) > 3  # long names side by side overlap: slant them, anchored at their end
    ax.set_xticks(range(len(names)), names, rotation=30 if crowded else 0, ha="right" if crowded else "center",
                  fontsize=8 if crowded else None)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")


def comparison(fig: Any, runs: Mapping[str, Sequence[Run]], labels: Mapping[str, str],
               values: Mapping[str, Sequence[float]], ylabel: str, title: str, *, training: bool = False) -> None:
    """A trained comparison's figure: each arm's test error per epoch (and its training
    error dotted, with ``training``) beside a bar per arm of ``values`` (fractions, shown in %)."""
    ax_curve, ax_bar = fig.subplots(1, 2)
    if training:
        curves(ax_curve, runs, "train_top1_err", {a: f"{label}, training" for a, label in labels.items()}, style=":")
    curves(ax_curve, runs, "test_top1_err", {a: f"{label}, test" if training else label for a, label in labels.items()})
    ax_curve.set_ylabel("error (%)" if training else "test error (%)")
    ax_curve.legend()
    bars(ax_bar, {labels[arm]: v for arm, v in values.items()}, ylabel, scale=100)
    fig.suptitle(title)


def table(ax: Any, header: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    """A table drawn on an axis with no frame: for studies whose result is a table."""
    ax.axis("off")
    drawn = ax.table(cellText=[[str(c) for c in row] for row in rows], colLabels=list(header), loc="center",
                     cellLoc="center")
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(8)
    drawn.auto_set_column_width(list(range(len(header))))  # each column as wide as its longest cell
    drawn.scale(1, 1.3)
    if title:
        ax.set_title(title)
