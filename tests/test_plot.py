"""plot_confusion_matrix's options (row normalisation, a masked diagonal) and
legend_below_axes."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from helpers import legend_below_axes, plot_confusion_matrix

# 3 classes: 0 is always right (8 examples), 1 is twice taken for 2, 2 once for 0.
Y_TRUE = np.array([0] * 8 + [1] * 5 + [2] * 4)
Y_PRED = np.array([0] * 8 + [1, 1, 1, 2, 2] + [2, 2, 2, 0])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def heat_map(fig):
    ax = fig.axes[0]
    return ax, ax.images[0]


def cell_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_plain_counts_colour_the_diagonal():
    ax, im = heat_map(plot_confusion_matrix(Y_TRUE, Y_PRED, num_classes=3))
    data = im.get_array()
    assert not np.ma.is_masked(data)
    np.testing.assert_array_equal(data, [[8, 0, 0], [0, 3, 2], [1, 0, 3]])
    assert im.norm.vmax == 8  # the correct zeros dominate the scale
    assert cell_texts(ax)[:3] == ["8", "0", "0"]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"


def test_mask_diagonal_colours_only_the_confusions():
    fig = plot_confusion_matrix(
        Y_TRUE, Y_PRED, num_classes=3, mask_diagonal=True, title="t"
    )
    ax, im = heat_map(fig)
    data = im.get_array()
    np.testing.assert_array_equal(np.ma.getmaskarray(data), np.eye(3, dtype=bool))
    assert im.norm.vmin == 0 and im.norm.vmax == 2  # largest off-diagonal count
    # The correct counts are still written, in bold black on the white diagonal.
    texts = ax.texts
    assert [texts[k].get_text() for k in (0, 4, 8)] == ["8", "3", "3"]
    assert all(texts[k].get_color() == "black" for k in (0, 4, 8))
    assert all(texts[k].get_fontweight() == "bold" for k in (0, 4, 8))
    assert texts[1].get_fontweight() == "normal"
    assert ax.get_title() == "t"
    assert "diagonal" in fig.axes[1].get_ylabel()  # the colour bar says so


def test_normalize_divides_each_row_by_its_count():
    ax, im = heat_map(
        plot_confusion_matrix(
            Y_TRUE, Y_PRED, num_classes=3, normalize=True, mask_diagonal=True
        )
    )
    full = np.ma.getdata(im.get_array())
    np.testing.assert_allclose(full.sum(axis=1), 1.0)
    np.testing.assert_allclose(full[1], [0, 0.6, 0.4])
    assert im.norm.vmax == pytest.approx(0.4)
    assert cell_texts(ax)[5] == "0.40"


def test_all_correct_predictions_still_draw():
    y = np.array([0, 1, 2])
    _, im = heat_map(plot_confusion_matrix(y, y, mask_diagonal=True))
    assert np.ma.getmaskarray(im.get_array()).sum() == 3


def test_class_names_must_match_num_classes():
    with pytest.raises(
        ValueError, match="class_names has 2 names but num_classes is 3"
    ):
        plot_confusion_matrix(Y_TRUE, Y_PRED, num_classes=3, class_names=["a", "b"])


@pytest.mark.parametrize("figsize", [(6, 3), (3, 1.5), (12, 8)])
def test_legend_below_axes_covers_neither_the_data_nor_the_labels(figsize):
    fig, ax = plt.subplots(figsize=figsize)
    ax.hist(np.random.default_rng(0).normal(size=200), bins=20, label="histogram")
    ax.axvline(0.0, color="C3", label="a threshold")
    ax.set(xlabel="x (unit)\nsecond line", ylabel="count", title="t")
    ax.legend()  # an earlier legend is replaced, not measured
    legend = legend_below_axes(ax)
    fig.set_size_inches(figsize[0] * 1.5, figsize[1] * 2)  # resized after the call
    fig.set_dpi(150)
    fig.canvas.draw()
    box = legend.get_window_extent()
    labels = ax.xaxis.get_tightbbox()  # tick labels and x label
    rows = {round(t.get_window_extent().y0) for t in legend.get_texts()}
    assert ax.get_legend() is legend and len(rows) == 1  # one row by default
    assert [t.get_text() for t in legend.get_texts()] == ["histogram", "a threshold"]
    assert box.y1 <= labels.y0 and box.y1 <= ax.bbox.y0  # under the labels and the data


def test_legend_below_axes_takes_handles_and_labels():
    fig, ax = plt.subplots()
    ax.barh([0, 1], [1, -1], color=["tab:green", "tab:red"])
    patches = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("tab:green", "tab:red")]
    legend = legend_below_axes(ax, patches, ["up", "down"], ncol=1)
    fig.canvas.draw()
    rows = {round(t.get_window_extent().y0) for t in legend.get_texts()}
    assert [t.get_text() for t in legend.get_texts()] == ["up", "down"]
    assert len(rows) == 2  # ncol=1: one entry a row


def test_legend_below_axes_renames_the_labelled_artists_or_refuses_a_mismatch():
    _, ax = plt.subplots()
    ax.plot([0, 1], label="x")
    ax.plot([1, 0], label="y")
    legend = legend_below_axes(ax, labels=["A", "B"])
    assert [t.get_text() for t in legend.get_texts()] == ["A", "B"]
    with pytest.raises(ValueError, match="1 labels for 2 legend entries"):
        legend_below_axes(ax, labels=["A"])
