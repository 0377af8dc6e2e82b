"""Plots the chapters share: training curves, image grids, confusion matrices, a pipeline
schedule, and a legend placed where it covers no data.

Each plot function draws into a new figure and returns it, so a notebook shows it once and a
test can inspect it without a display; ``legend_below_axes`` adds a legend to an existing axes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.metrics import History, confusion_matrix

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.legend import Legend

__all__ = [
    "legend_below_axes",
    "plot_confusion_matrix",
    "plot_history",
    "plot_pipeline_schedule",
    "plot_step_losses",
    "show_images",
]


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def _minor_log_label(ax) -> Callable[[float, int], str]:
    """Labels for the minor ticks of ``ax``'s log y-axis, as plain numbers: every one (0.7,
    0.8, ...) when the axis spans less than a decade, 2 and 5 times a power of ten up to two
    decades, none beyond (the powers of ten carry the labels)."""

    def label(value: float, _: int) -> str:
        low, high = ax.get_ylim()
        decades = np.log10(high / low) if low > 0 else np.inf
        digit = round(value / 10 ** np.floor(np.log10(value)))
        show = decades < 1 or (decades < 2 and digit in (2, 5))
        return f"{value:g}" if show else ""

    return label


def legend_below_axes(
    ax: Axes,
    handles: Sequence[Artist] | None = None,
    labels: Sequence[str] | None = None,
    *,
    fontsize: float = 8,
    **kwargs: Any,
) -> Legend:
    """Draw ``ax``'s legend under its x tick labels and x label, so that it covers no data.

    The depth of the labels is measured (in points, so the legend stays clear when the figure
    is resized or saved at another dpi), so call it after the x label and ticks are set; an
    earlier legend of ``ax`` is removed first. ``handles`` (artists) and ``labels`` as for
    ``ax.legend``: by default the labelled artists of ``ax``, and ``labels`` alone renames
    them in order. All entries on one row unless ``ncol`` is given; ``fontsize`` in points;
    other keywords go to ``ax.legend``. Returns the legend. Raises ``ValueError`` if
    ``labels`` and ``handles`` differ in length.
    """
    from matplotlib.transforms import offset_copy

    if ax.get_legend() is not None:  # measure the labels, not an earlier legend
        ax.get_legend().remove()
    fig = ax.figure
    below = ax.bbox.y0 - ax.get_tightbbox().y0  # display units (pixels)
    points = -below * 72 / fig.dpi - 2  # and a 2-point gap
    anchor = offset_copy(ax.transAxes, fig=fig, y=points, units="points")
    if handles is None:
        handles, own = ax.get_legend_handles_labels()
        labels = own if labels is None else labels
    elif labels is None:
        labels = [h.get_label() for h in handles]
    if len(labels) != len(handles):
        raise ValueError(f"{len(labels)} labels for {len(handles)} legend entries")
    kwargs.setdefault("ncol", max(1, len(handles)))
    return ax.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0),
        bbox_transform=anchor,
        frameon=False,
        fontsize=fontsize,
        **kwargs,
    )


def plot_history(history: History, *, title: str = "", smooth: int = 20) -> Figure:
    """Loss per step (raw and moving average) and, per epoch, every loss and accuracy logged."""
    import matplotlib.pyplot as plt  # on first use: half a second a script may not need
    from matplotlib import ticker

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = np.asarray(history.step_loss)
    if len(steps):
        x = np.arange(1, len(steps) + 1)
        ax_loss.plot(x, steps, alpha=0.25, color="C0", label="train (per step)")
        smoothed = _smooth(steps, smooth)
        if len(smoothed) < len(steps):
            # The moving average starts a window in.
            x = np.arange(len(steps) - len(smoothed) + 1, len(steps) + 1)
            label = f"train ({smooth}-step mean)"
            ax_loss.plot(x, smoothed, color="C0", label=label)
    if history.epochs:
        steps_per_epoch = max(len(steps) // len(history.epochs), 1)
        ends = steps_per_epoch * np.arange(1, len(history.epochs) + 1)
        keys = history.epochs[-1].keys()
        for i, key in enumerate(
            k for k in keys if k.endswith("loss") and k != "train_loss"
        ):
            ax_loss.plot(
                ends, history[key], "o-", color=f"C{i + 1}", label=key.replace("_", " ")
            )
        for i, key in enumerate(k for k in keys if k.endswith("accuracy")):
            epochs = np.arange(1, len(history.epochs) + 1)
            ax_acc.plot(
                epochs, history[key], "o-", color=f"C{i}", label=key.replace("_", " ")
            )
    ax_loss.set(xlabel="step", ylabel="loss (log scale)", yscale="log", title="loss")
    # Plain numbers on the log axis (0.8, not 8x10^-1); whole epochs, even one, on the x axis.
    ax_loss.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax_loss.yaxis.set_minor_formatter(ticker.FuncFormatter(_minor_log_label(ax_loss)))
    ax_acc.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_images(
    images: np.ndarray,
    labels: Sequence[int] | None = None,
    *,
    class_names: Sequence[str] | None = None,
    predictions: Sequence[int] | None = None,
    ncols: int = 8,
) -> Figure:
    """A grid of images (N, H, W) grey or (N, H, W, 3) RGB, titled by label (and prediction).

    A wrong prediction is titled in red as ``pred (true)``.
    """
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"images must be (N, H, W) or (N, H, W, C), got shape {images.shape}"
        )
    n = len(images)
    nrows = max(1, -(-n // ncols))
    # constrained layout, not tight_layout: it runs at draw time, so a suptitle the caller adds
    # afterwards gets room above the first row's titles instead of overlapping them.
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(1.3 * ncols, 1.45 * nrows),
        squeeze=False,
        layout="constrained",
    )

    def name(c: int) -> str:
        return class_names[c] if class_names is not None else str(c)

    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray" if images.ndim == 3 else None)
        if labels is None:
            continue
        true = int(labels[i])
        if predictions is None:
            ax.set_title(name(true), fontsize=9)
        else:
            pred = int(predictions[i])
            ok = pred == true
            text = name(pred) if ok else f"{name(pred)} ({name(true)})"
            ax.set_title(text, fontsize=9, color="black" if ok else "red")
    return fig


def plot_confusion_matrix(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
    normalize: bool = False,
    mask_diagonal: bool = False,
    title: str = "",
) -> Figure:
    """Confusion matrix as a heat map: rows are true classes, columns predictions.

    ``normalize=True`` divides each row by its count, so a cell reads "fraction of this true
    class predicted as that class". ``mask_diagonal=True`` leaves the correct predictions
    uncoloured (their numbers are still written), so the colour scale spans the confusions
    only: with a good classifier the diagonal is so large that it hides every confusion.
    """
    import matplotlib.pyplot as plt

    if num_classes is None and class_names is not None:
        num_classes = len(class_names)
    elif num_classes is None:
        num_classes = int(max(np.max(y_true), np.max(y_pred))) + 1
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} names but num_classes is {num_classes}"
        )
    cm = confusion_matrix(y_true, y_pred, num_classes).astype(float)  # (C, C)
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    names = (
        list(class_names)
        if class_names is not None
        else [str(i) for i in range(num_classes)]
    )
    diagonal = np.eye(num_classes, dtype=bool)
    shown = np.ma.masked_where(diagonal, cm) if mask_diagonal else cm
    colored = cm[~diagonal] if mask_diagonal else cm
    vmax = max(float(colored.max()), 1e-12) if colored.size else 1.0
    size = 0.45 * num_classes + 2
    fig, ax = plt.subplots(figsize=(size + 1, size))
    cmap = plt.get_cmap("Blues").with_extremes(bad="white")  # the masked diagonal
    im = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=vmax)
    what = "fraction of the true class" if normalize else "examples"
    if mask_diagonal:
        what += " (diagonal not coloured)"
    fig.colorbar(im, ax=ax, fraction=0.046, label=what)
    ticks = range(num_classes)
    ax.set(xticks=ticks, yticks=ticks, xticklabels=names, yticklabels=names)
    ax.set(xlabel="predicted class", ylabel="true class")
    if title:
        ax.set_title(title)
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    threshold = vmax / 2
    for i in range(num_classes):
        for j in range(num_classes):
            text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            # the uncoloured diagonal's numbers in bold, so they stay legible on white
            on_diagonal = mask_diagonal and i == j
            dark = cm[i, j] > threshold and not on_diagonal
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
                fontweight="bold" if on_diagonal else "normal",
            )
    fig.tight_layout()
    return fig


def plot_step_losses(
    step_losses: dict[str, Sequence[float]],
    *,
    title: str,
    smooth_fraction: float = 1 / 40,
    styles: dict[str, dict[str, Any]] | None = None,
) -> Figure:
    """Training loss per step of several runs, as moving averages on a log axis; the figure.

    ``step_losses``: run name -> its loss at every step (nats; steps count from 1). Each curve
    is averaged over a window of ``smooth_fraction`` (0 < f <= 1) of its run and drawn up to
    its first non-finite loss. The y-range comes from the runs that stayed finite and ended
    below their start, so a run that diverges cannot squash the others (at most six decades;
    0.1 to 10 when no run has a finite window); where a run leaves the plot at the top, or its
    loss stops being finite, a triangle on the top edge and a note give the step. Raises
    ``ValueError`` for no runs or a ``smooth_fraction`` outside (0, 1].
    ``styles``: run name -> extra ``ax.plot`` keywords (``ls``, ``lw``, ``marker``, ...), so
    that curves that coincide stay visible; a run's markers are staggered against the others'.
    """
    import matplotlib.pyplot as plt

    if not step_losses or not 0 < smooth_fraction <= 1:
        raise ValueError(
            f"plot_step_losses: needs at least one run and 0 < smooth_fraction <= 1, got "
            f"{len(step_losses)} runs and {smooth_fraction}"
        )

    curves = {}  # name -> (steps, smoothed loss, first non-finite step or None)
    for name, values in step_losses.items():
        losses = np.asarray(values, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(losses))
        end = int(bad[0]) if len(bad) else len(losses)  # the finite prefix only
        window = max(1, int(len(losses) * smooth_fraction))
        smooth = np.empty(0)  # when the run broke within its first window
        if end >= window:
            smooth = np.convolve(losses[:end], np.ones(window) / window, "valid")
        curves[name] = (
            np.arange(window, end + 1),
            smooth,
            end + 1 if len(bad) else None,
        )
    working = [
        c
        for _, c, broke in curves.values()
        if broke is None and len(c) and c[-1] < c[0]
    ]
    working = working or [c for _, c, _ in curves.values() if len(c)]
    finite = np.concatenate(working) if working else np.empty(0)
    finite = finite[finite > 0]
    # every run broke before its first window: a default range; the markers still show where
    low, high = (finite.min() / 1.5, finite.max() * 1.5) if len(finite) else (0.1, 10.0)
    high = min(
        high, low * 1e6
    )  # runs that all diverged: the log axis's ticks stay finite
    longest = max((len(v) for v in step_losses.values()), default=1)

    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (name, (steps, smooth, broke)) in enumerate(curves.items()):
        # Clipped far above the top: huge finite losses would overflow the log axis's limits.
        every = max(1, len(smooth) // 8)  # markers, if styled: staggered run by run
        style = {"markevery": (k * every // len(curves), every), "markersize": 5}
        style |= (styles or {}).get(name, {})
        ax.plot(
            steps, np.minimum(smooth, 10 * high), color=f"C{k}", label=name, **style
        )
        above = np.flatnonzero(smooth > high)
        where = steps[above[0]] if len(above) else broke
        if where is not None:
            right = where > 0.6 * longest  # the note on the free side of the marker
            ax.plot(where, high, "v", color=f"C{k}", ms=9, clip_on=False)
            why = "leaves the plot" if len(above) else "loss not finite"
            ax.annotate(f"{name}: {why} at step {where}", (where, high),
                        xytext=(-6 if right else 6, -14), textcoords="offset points",
                        ha="right" if right else "left", color=f"C{k}", fontsize=8)  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    ax.set(
        xlabel="training step (batch)", ylabel="training loss, moving average (nats)"
    )
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower left")
    return fig


def plot_pipeline_schedule(stages: int = 4, micro_batches: int = 6) -> Figure:
    """GPipe's schedule (chapter 9): which stage works on which micro-batch, step by step.

    Each of ``stages`` devices holds consecutive layers; each batch is cut into
    ``micro_batches``. Forward passes flow down the stages (micro-batch ``m`` on stage ``s``
    at step ``s + m``), then all backward passes flow back, last stage first; the idle
    steps, the *bubble*, take ``(S - 1) / (M + S - 1)`` of the time, printed in the title.
    One row per stage, one block per pass labelled with its micro-batch; x in steps of one
    micro-batch through one stage. After Huang et al., 2019, "GPipe", figure 2(c); the order of
    the backward passes within a stage does not change the bubble. Raises ``ValueError`` for
    fewer than one stage or micro-batch.
    """
    import matplotlib.pyplot as plt

    if stages < 1 or micro_batches < 1:
        raise ValueError(
            f"needs at least one stage and one micro-batch, got {stages}, {micro_batches}"
        )
    # the step after which the last micro-batch has left the last stage
    forward_steps = micro_batches + stages - 1
    fig, ax = plt.subplots(figsize=(8, 0.4 + 0.55 * stages))
    for s in range(stages):
        for m in range(micro_batches):
            starts = {
                "forward": s + m,
                # backward: stage S-1 first, micro-batches in order, flowing back up
                "backward": forward_steps + (stages - 1 - s) + m,
            }
            for (name, start), colour in zip(starts.items(), ("C0", "C1"), strict=True):
                label = name if s == m == 0 else None  # one legend entry per pass
                ax.barh(s, 1, left=start, color=colour, edgecolor="white", label=label)
                ax.text(start + 0.5, s, f"{m + 1}", ha="center", va="center", c="w")
    bubble = (stages - 1) / forward_steps
    ax.set(
        yticks=range(stages),
        yticklabels=[f"stage {s + 1}" for s in range(stages)],
        xlabel="time (steps of one micro-batch through one stage)",
        xlim=(0, 2 * forward_steps),
        title=f"GPipe schedule: {stages} stages, {micro_batches} micro-batches, "
        f"bubble {bubble:.0%}",
    )
    ax.invert_yaxis()  # stage 1 on top
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: covers no block
    return fig
