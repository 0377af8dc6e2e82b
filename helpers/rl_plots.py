"""Chapter 7's plots: learning curves over seeds and one episode's trajectory (matplotlib).

Framework-free; ``helpers.rl`` (and so ``H.rl`` in both halves) re-exports the public ones.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from helpers.plot import legend_below_axes

__all__ = ["plot_learning_curves", "plot_trajectory"]

# Below this many seeds a percentile band is the gap between a couple of runs: draw their
# full range and call it that.
MIN_SEEDS_FOR_QUARTILES = 4


def _carry_forward(curves: np.ndarray) -> np.ndarray:
    """``curves`` (seeds, points) with each NaN replaced by the last value before it in its row.

    NaN before a row's first value stays NaN. Float64, a new array.
    """
    curves = np.array(curves, np.float64)
    if curves.ndim != 2:
        raise ValueError(
            f"_carry_forward: curves must be (seeds, points), got {curves.shape}"
        )
    index = np.where(np.isnan(curves), 0, np.arange(curves.shape[1]))
    np.maximum.accumulate(index, axis=1, out=index)
    # a row that starts with NaN keeps them until its first value: index 0 is itself NaN
    return np.take_along_axis(curves, index, axis=1)


def plot_learning_curves(
    curves: np.ndarray,
    steps: np.ndarray,
    *,
    label: str,
    ax: Any = None,
    title: str = "Learning curves",
    ylabel: str = "episode return",
) -> Any:
    """Mean over seeds with a shaded band: ``curves`` (seeds, points), ``steps`` (points,).

    The band is the interquartile range (25th to 75th percentile of the seeds) from
    ``MIN_SEEDS_FOR_QUARTILES`` seeds on, so one outlying seed does not stretch it; with fewer
    seeds, the seeds' full range (the legend says which).

    A NaN point (no episode finished there) takes the seed's last finished value, so a run
    whose episodes outlast a rollout draws no gaps; NaN before a seed's first value stays
    out of the mean. The legend goes below the axes, where it hides no data (a caller that
    draws more lines redraws it there). Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    curves = np.asarray(curves, np.float64)
    if curves.ndim != 2 or curves.shape[1] != len(steps):
        raise ValueError(
            f"plot_learning_curves: curves must be (seeds, {len(steps)}), got {curves.shape}"
        )
    curves = _carry_forward(curves)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    quartiles = len(curves) >= MIN_SEEDS_FOR_QUARTILES
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # a point where no seed has a value yet: NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, 0)
        percentiles = [25, 75] if quartiles else [0, 100]
        low, high = np.nanpercentile(curves, percentiles, axis=0)
    line = ax.plot(steps, mean, label=f"{label}: mean of {len(curves)} seeds")[0]
    band = "range of the seeds"
    if quartiles:
        band = "middle 50% of seeds (25th-75th percentile)"
    ax.fill_between(
        steps, low, high, color=line.get_color(), alpha=0.25, label=f"{label}: {band}"
    )
    ax.set(title=title, xlabel="environment steps", ylabel=ylabel)
    legend_below_axes(ax, ncol=1)  # one entry a row: the labels are long
    return ax


def plot_trajectory(
    observations: np.ndarray,
    names: Sequence[str],
    *,
    title: str,
    dt: float,
    first_steps: Sequence[int | None] | None = None,
    ncols: int = 2,
) -> Any:
    """One episode's state variables over time: ``observations`` (T, D), one panel per name.

    Panels fill a grid ``ncols`` wide, row by row (two columns keep the text readable on a
    phone-width page).

    ``first_steps`` gives, per name, how many leading steps its panel shows (None: the whole
    episode); a variable that changes sign every step reads as a solid block over hundreds
    of steps, and as a zigzag, with a marker per step, over the first few dozen.
    """
    import matplotlib.pyplot as plt

    observations = np.asarray(observations)
    if observations.ndim != 2 or observations.shape[1] != len(names):
        raise ValueError(
            f"plot_trajectory: observations must be (T, {len(names)}), "
            f"got {observations.shape}"
        )
    if first_steps is None:
        first_steps = [None] * len(names)
    if len(first_steps) != len(names):
        raise ValueError(
            f"plot_trajectory: first_steps must have {len(names)} entries, "
            f"got {len(first_steps)}"
        )
    ncols = max(1, min(ncols, len(names)))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.5 * ncols, 2.6 * nrows))
    axes = np.atleast_1d(axes).ravel()
    for spare in axes[len(names) :]:
        spare.remove()
    time = np.arange(len(observations)) * dt
    for ax, column, name, first in zip(
        axes[: len(names)], observations.T, names, first_steps, strict=True
    ):
        if first is None or first >= len(column):
            ax.plot(time, column)
            ax.set_title("whole episode", fontsize=9)
        else:
            ax.plot(time[:first], column[:first], ".-", markersize=3, linewidth=0.8)
            ax.set_title(f"first {first} steps ({first * dt:g} s)", fontsize=9)
        ax.axhline(0, color="gray", linewidth=0.5)
        ax.set(xlabel="time (s)", ylabel=name)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
