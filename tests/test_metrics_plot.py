import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from helpers import confusion_matrix, plot_confusion_matrix, plot_history, show_images
from helpers.metrics import History, run_summary, step_timing


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def make_history() -> History:
    h = History()
    for epoch in (1, 2):
        h.log_steps([2.0 / epoch, 1.5 / epoch])
        h.log_epoch(
            epoch=epoch,
            train_loss=1.0 / epoch,
            test_loss=1.2 / epoch,
            test_accuracy=0.5 + epoch / 10,
            seconds=2.0,
        )
    h.first_step_seconds = 0.5
    return h


def test_history_access_and_json():
    h = make_history()
    assert h["test_accuracy"] == [0.6, 0.7] and h.last("train_loss") == 0.5
    assert len(h.step_loss) == 4
    with pytest.raises(KeyError, match=r"no metric 'val_loss'.*test_accuracy"):
        h["val_loss"]
    assert json.loads(h.to_json())["epochs"][1]["epoch"] == 2


def test_run_summary_leaves_out_the_first_step():
    s = run_summary(
        make_history(),
        {"accuracy": 0.9, "loss": 0.3},
        batch_size=10,
        parameters=5,
        train_examples=40,
        test_examples=10,
    )
    assert s["test_accuracy"] == 0.9 and s["train_seconds"] == 4.0
    assert s["train_examples_per_second"] == pytest.approx(
        3 * 10 / 3.5, abs=0.05
    )  # rounded to 0.1


def test_step_timing_sets_the_first_step_apart():
    t = step_timing(make_history(), batch_size=10)  # 4 steps in 4.0 s, the first 0.5 s
    assert t["first_step_seconds"] == 0.5
    assert t["train_seconds"] == pytest.approx(3.5 + 3.5 / 3, abs=0.005)
    assert t["compile_seconds"] == 0.0  # a first step shorter than a steady one
    assert t["train_examples_per_second"] == pytest.approx(30 / 3.5, abs=0.05)


def test_plot_history_ticks_whole_epochs_even_for_one_epoch():
    h = History()
    h.log_steps([2.0, 1.5])
    h.log_epoch(epoch=1, train_loss=1.0, test_accuracy=0.8, seconds=1.0)
    for history in (h, make_history()):
        acc_ax = plot_history(history).axes[1]
        acc_ax.figure.canvas.draw()
        low, high = acc_ax.get_xlim()
        shown = [t for t in acc_ax.get_xticks() if low <= t <= high]
        assert shown and all(float(t).is_integer() for t in shown), shown


def test_confusion_matrix_counts():
    cm = confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="3 labels but y_pred has 2"):
        confusion_matrix([0, 1, 2], [0, 1], 3)


def test_plots_draw_what_they_say():
    fig = plot_history(make_history(), title="t")
    loss_ax, acc_ax = fig.axes
    assert {line.get_label() for line in acc_ax.lines} == {"test accuracy"}
    assert "test loss" in {line.get_label() for line in loss_ax.lines}
    fig = show_images(
        np.zeros((5, 28, 28), np.uint8), [1, 2, 3, 4, 5], predictions=[1, 2, 0, 4, 5]
    )
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["1", "2", "0 (3)", "4", "5"]
    fig = plot_confusion_matrix(
        np.array([0, 1, 1]), np.array([0, 1, 0]), class_names=["a", "b"]
    )
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b"]
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        show_images(np.zeros((28, 28)))


def test_end_epoch_defines_the_training_metrics():
    h = History()
    h.end_epoch(1, [3.0, 1.0], correct=3, seen=4, seconds=2.0, test_accuracy=0.5)
    assert h.step_loss == [3.0, 1.0]
    assert h.epochs == [
        {
            "epoch": 1.0,
            "train_loss": 2.0,
            "train_accuracy": 0.75,
            "seconds": 2.0,
            "examples_per_second": 2.0,
            "test_accuracy": 0.5,
        }
    ]


def test_normalized_confusion_matrix_divides_each_row_by_its_count():
    # Rows (true classes) hold 4, 2 and 1 examples; columns (predictions) 2, 4 and 1: a matrix
    # divided by columns would not have rows summing to 1.
    y_true = np.array([0, 0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 2, 1, 1, 0])
    fig = plot_confusion_matrix(y_true, y_pred, normalize=True)
    shown = np.asarray(
        fig.axes[0].images[0].get_array()
    )  # the values the heat map draws
    np.testing.assert_allclose(shown.sum(axis=1), 1.0)
    np.testing.assert_allclose(
        shown, [[0.25, 0.5, 0.25], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    )
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[:3] == [
        "0.25",
        "0.50",
        "0.25",
    ]  # the printed numbers agree with the colours


def test_run_summary_is_the_whole_record_of_a_run():
    # Every key and every value: the benchmark record (helpers.bench) is exactly this dict.
    h = (
        make_history()
    )  # 4 steps, 2 epochs of 2.0 s, first step 0.5 s, last train_loss 0.5
    s = run_summary(
        h,
        {"accuracy": 0.123456, "loss": 1.234567},
        batch_size=8,
        parameters=77,
        train_examples=32,
        test_examples=9,
    )
    assert s == {
        "test_accuracy": 0.1235,
        "test_loss": 1.2346,
        "final_train_loss": 0.5,
        "train_seconds": 4.0,
        "first_step_seconds": 0.5,
        "train_examples_per_second": round(3 * 8 / 3.5, 1),
        "parameters": 77,
        "train_examples": 32,
        "test_examples": 9,
        "epochs": 2,
    }
    h.first_step_seconds = None  # no first step measured: nothing left out
    assert run_summary(
        h,
        {"accuracy": 1, "loss": 0},
        batch_size=8,
        parameters=1,
        train_examples=1,
        test_examples=1,
    )["train_examples_per_second"] == round(3 * 8 / 4.0, 1)


def test_history_json_round_trip():
    h = make_history()
    assert json.loads(h.to_json()) == {
        "step_loss": h.step_loss,
        "epochs": h.epochs,
        "first_step_seconds": 0.5,
    }


def test_confusion_matrix_names_the_bad_argument():
    with pytest.raises(ValueError, match=r"y_pred has labels outside 0\.\.1"):
        confusion_matrix([0, 1], [0, 2], 2)
    with pytest.raises(ValueError, match=r"y_true has labels outside 0\.\.1"):
        confusion_matrix([-1, 1], [0, 1], 2)


def test_last_is_the_final_epoch():
    h = History()
    for epoch in (1, 2, 3):
        h.log_epoch(epoch=epoch, test_accuracy=epoch / 10)
    assert h.last("test_accuracy") == 0.3 and h.last("epoch") == 3


@pytest.mark.parametrize(
    ("end", "minor_labels"), [(0.75, {"0.8", "0.9"}), (0.002, set())]
)
def test_plot_history_labels_the_log_loss_axis_in_plain_numbers(end, minor_labels):
    """A loss within a decade of its start reads 0.8, 0.9 on the axis (not 8e-01); one that
    falls three decades is labelled at the powers of ten only."""
    h = History()
    h.log_steps(list(np.geomspace(2.3, end, 50)))
    h.log_epoch(epoch=1, train_accuracy=0.5)
    ax = plot_history(h).axes[0]
    ax.figure.canvas.draw()
    minor = {t.get_text() for t in ax.yaxis.get_minorticklabels()} - {""}
    assert minor_labels <= minor and not any("e" in t for t in minor)
    if not minor_labels:
        assert not minor
    assert ax.get_ylabel() == "loss (log scale)"


def test_plot_step_losses_fits_the_finite_runs_and_marks_the_one_that_diverges():
    import warnings

    from helpers import plot_step_losses

    steps = np.arange(1, 201)
    runs = {"good": 2.3 / np.sqrt(steps), "also good": 2.0 / steps**0.3}
    diverging = 2.3 * np.exp(steps / 10.0)  # leaves the plot, overflows, then NaN
    diverging[150:] = np.nan
    runs["outline's cosine"] = diverging
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from the log axis
        fig = plot_step_losses(runs, title="t")
        fig.canvas.draw()
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert high < 10 and low < 0.2  # the working runs set the range, not the divergence
    notes = [t.get_text() for t in ax.texts]
    assert len(notes) == 1 and notes[0].startswith("outline's cosine: leaves the plot")
    broken = plot_step_losses({"nan at once": [np.nan] * 50}, title="t")  # no crash
    assert broken.axes[0].get_ylim() == (0.1, 10.0)
    # every run diverged yet stayed finite: the range stays drawable
    exploded = plot_step_losses({"a": np.exp(np.arange(1, 201) * 3.5)}, title="t")
    exploded.canvas.draw()
    low, high = exploded.axes[0].get_ylim()
    assert high <= low * 1e6 * (1 + 1e-9)
    with pytest.raises(ValueError, match="at least one run"):
        plot_step_losses({}, title="t")


def test_plot_pipeline_schedule_draws_gpipes_passes_and_bubble():
    from matplotlib.colors import to_rgba

    from helpers import plot_pipeline_schedule

    stages, micro = 3, 4
    ax = plot_pipeline_schedule(stages, micro).axes[0]
    # (stage, start) of each block, by colour: C0 forward, C1 backward
    blocks = {
        c: {
            (round(b.get_y() + b.get_height() / 2), b.get_x())
            for b in ax.patches
            if b.get_facecolor() == to_rgba(c)
        }
        for c in ("C0", "C1")
    }
    forward = {(s, s + m) for s in range(stages) for m in range(micro)}
    # all forwards end at step M + S - 1; the last stage starts the backwards there
    done = micro + stages - 1
    backward = {
        (s, done + (stages - 1 - s) + m) for s in range(stages) for m in range(micro)
    }
    assert blocks == {"C0": forward, "C1": backward}
    # each block carries its micro-batch, 1-based, at its centre
    labels = {
        (round(t.get_position()[1]), t.get_position()[0] - 0.5): t for t in ax.texts
    }
    for s in range(stages):
        for m in range(micro):
            for start in (s + m, done + (stages - 1 - s) + m):
                assert labels[(s, start)].get_text() == str(m + 1)
    assert len(ax.texts) == 2 * stages * micro
    assert ax.get_title().endswith("bubble 33%")  # (S - 1) / (M + S - 1) = 2 / 6
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == ["stage 1", "stage 2", "stage 3"] and ax.yaxis_inverted()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["forward", "backward"] and ax.get_xlim() == (0, 2 * done)
    for bad in [(0, 4), (3, 0)]:
        with pytest.raises(ValueError, match="at least one stage"):
            plot_pipeline_schedule(*bad)


def test_top_confusions_are_the_largest_off_diagonal_cells():
    from helpers import top_confusions

    counts = np.array([[50, 7, 1], [2, 40, 9], [0, 3, 60]])  # the diagonal is largest
    assert top_confusions(counts, 2) == [(1, 2, 9), (0, 1, 7)]
    with pytest.raises(ValueError, match=r"\(C, C\)"):
        top_confusions(np.zeros((2, 3)), 1)


def test_plot_step_losses_styles_runs_and_staggers_their_markers():
    from helpers import plot_step_losses

    runs = {
        "a": np.linspace(2.0, 1.0, 400),
        "b": np.linspace(2.0, 1.0, 400),
    }  # coincide
    styles = {"a": dict(ls="--", marker="o"), "b": dict(ls=":", marker="x")}
    fig = plot_step_losses(runs, title="t", styles=styles)
    a, b = [ln for ln in fig.axes[0].get_lines() if ln.get_label() in runs]
    assert (a.get_linestyle(), a.get_marker()) == ("--", "o")
    assert (b.get_linestyle(), b.get_marker()) == (":", "x")
    assert a.get_markevery()[0] != b.get_markevery()[0]  # the markers do not overlap
    assert a.get_markevery()[1] == b.get_markevery()[1] > 1
    plt.close(fig)
