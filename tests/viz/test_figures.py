"""Report figures: official colours, legends with class names, metre axes the right way round, row-normalised
confusion, curves from metrics records, and the score table's Markdown."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from nerfseg.data.labelmaps import NUSCENES, SEMANTICKITTI
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.viz import figures
from nerfseg.viz.report import ScoreRow, score_table


def test_class_colours_are_the_official_ones_and_ignore_is_grey():
    ids = np.array([0, 8, IGNORE_INDEX, 19, -1])
    rgb = figures.class_rgb(ids, SEMANTICKITTI)
    assert rgb[0].tolist() == [100, 150, 245]  # car, semantic-kitti.yaml BGR [245, 150, 100]
    assert rgb[1].tolist() == [255, 0, 255]  # road
    assert all(rgb[k].tolist() == list(figures.IGNORE_COLOR) for k in (2, 3, 4))
    assert figures.class_rgb(np.array([6]), NUSCENES)[0].tolist() == [0, 0, 230]  # devkit pedestrian blue


def test_legend_names_the_classes_in_their_colours():
    handles = figures.legend_handles(NUSCENES, [6, 3, 3], ignore_label="unlabeled")
    assert [h.get_label() for h in handles] == ["car", "pedestrian", "unlabeled"]
    assert np.allclose(handles[0].get_facecolor()[:3], np.array([255, 158, 0]) / 255)


def test_bev_figure_puts_forward_up_and_left_left_in_metres(tmp_path):
    # a car 20 m ahead, a building 15 m to the left, road around the sensor
    points = np.array([[20.0, 0.0, 0.0], [0.0, 15.0, 0.0], [2.0, 1.0, -1.5], [-3.0, -2.0, -1.5]])
    truth = np.array([0, 12, 8, IGNORE_INDEX])
    pred = np.array([0, 12, 10, 8])
    figure = figures.bev_figure(points, truth, {"run a": pred}, SEMANTICKITTI, "title", extent_m=30.0)
    truth_ax, pred_ax = figure.axes[0], figure.axes[1]
    centre = truth_ax.transData.transform((0.0, 0.0))
    ahead = truth_ax.transData.transform((0.0, 20.0))  # data coordinates: (y, x)
    left = truth_ax.transData.transform((15.0, 0.0))
    assert ahead[1] > centre[1] + 50 and abs(ahead[0] - centre[0]) < 1  # forward is up the page
    assert left[0] < centre[0] - 50  # left is left
    assert "(m" in truth_ax.get_xlabel() and "(m" in truth_ax.get_ylabel()
    assert pred_ax.get_title() == "prediction: run a"
    error_ax = figure.axes[len(figure.axes) // 2 + 1]
    assert "33.3% of the labeled points wrong" in error_ax.get_title()  # 1 of the 3 labeled points
    legend_texts = [
        t.get_text() for ax in figure.axes if ax.get_legend() for t in ax.get_legend().get_texts()
    ]
    assert {"car", "road", "sidewalk", "building", "unlabeled"} <= set(legend_texts)
    assert "truck" not in legend_texts  # only the classes shown
    path = figures.save_figure(figure, tmp_path / "sub" / "bev.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 800


def test_confusion_rows_are_normalised_and_absent_classes_marked(tmp_path):
    names = ("a", "b", "c")
    counts = np.array([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    shares = figures.row_normalised(counts)
    assert shares[0].tolist() == [0.75, 0.25, 0.0]
    assert np.isnan(shares[1]).all()
    assert shares[2].tolist() == [0.25, 0.25, 0.5]
    with_ignore = np.zeros((4, 4), np.int64)
    with_ignore[:3, :3] = counts
    with_ignore[3, 0] = 99  # the ignore row is dropped
    figure = figures.confusion_figure(with_ignore, names, "t")
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b (absent)", "c"]
    assert {t.get_text() for t in ax.texts} == {"75", "25", "50"}
    assert figures.save_figure(figure, tmp_path / "c.png").stat().st_size > 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 1000), min_size=4, max_size=4), min_size=4, max_size=4))
def test_row_normalised_rows_sum_to_one_where_a_class_is_present(rows):
    counts = np.array(rows)
    shares = figures.row_normalised(counts)
    present = counts.sum(axis=1) > 0
    assert np.allclose(shares[present].sum(axis=1), 1.0)
    assert np.isnan(shares[~present]).all()


def test_curves_read_numbers_from_metrics_records_and_skip_the_rest(tmp_path):
    records = [
        {"step": 5, "time": 1.0, "train/loss": 3.0, "train/supervised": 2.0},
        {"step": 10, "time": 2.0, "train/loss": "nan", "train/supervised": 1.5},  # non-finite: logged as text
        {"step": 10, "time": 2.0, "val/miou": 0.25},
    ]
    steps, values = figures.curve_points(records, "train/loss")
    assert steps.tolist() == [5.0] and values.tolist() == [3.0]
    figure = figures.curves_figure({"r": records, "empty": []})
    miou_ax = figure.axes[2]
    line = miou_ax.get_lines()[0]
    assert line.get_xdata().tolist() == [10.0] and line.get_ydata().tolist() == [25.0]  # percent
    assert [t.get_text() for t in miou_ax.get_legend().get_texts()] == ["r"]
    assert figures.save_figure(figure, tmp_path / "curves.png").stat().st_size > 0


def test_camera_figure_shows_every_panel_with_a_legend(tmp_path):
    image = np.zeros((40, 120, 3), np.uint8)
    labels = np.full((10, 30), 8)
    labels[:3] = IGNORE_INDEX
    figure = figures.camera_figure(image, [("rendered", labels), ("pseudo", None), ("truth", labels)],
                                   SEMANTICKITTI, "t")  # fmt: skip
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["camera image", "rendered", "pseudo", "truth"]
    assert any(t.get_text() == "not available" for t in figure.axes[2].texts)
    assert [t.get_text() for t in figure.legends[0].get_texts()][0] == "road"
    assert figures.save_figure(figure, tmp_path / "cam.png").stat().st_size > 0


def test_score_table_rows_percent_and_bold_best():
    rows = [
        ScoreRow("sup", "supervised", "2 of 16", 100, 0.40, 0.8, [0.5, 0.0, math.nan]),
        ScoreRow("ne|rf", "nerf", "2 of 16", 100, 0.45, 0.7, [0.25, 0.0, math.nan]),
    ]
    text = score_table(rows, ("car", "road", "pole"))
    lines = text.splitlines()
    assert lines[0].startswith(
        "| run | method | labels | steps | mIoU (%) | accuracy (%) | car | road | pole |"
    )
    assert lines[2] == "| sup | supervised | 2 of 16 | 100 | 40.0 | 80.0 | **50.0** | 0.0 | n/a |"
    assert lines[3] == "| ne\\|rf | nerf | 2 of 16 | 100 | **45.0** | 70.0 | 25.0 | 0.0 | n/a |"
    with pytest.raises(ValueError, match="2 IoUs for 3 classes"):
        score_table([ScoreRow("x", "m", "", 1, 0.1, 0.1, [0.1, 0.2])], ("a", "b", "c"))
