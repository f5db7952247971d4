"""The 3D scan page: colourings against hand-computed values, the page's figure and buttons, the inline and
the shared-library variant, and a real headless chromium that loads the page, draws it, and switches it."""

from __future__ import annotations

import numpy as np
import pytest
from chromium_testing import Chromium, chromium_path
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.data.labelmaps import NUSCENES, SEMANTICKITTI
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.viz.scan_page import (
    ERROR_PALETTE,
    IGNORED_RGB,
    LIBRARY_NAME,
    decode_array,
    error_colouring,
    figure_colourings,
    page_figure,
    scan_colourings,
    stepped_colorscale,
    write_plotly_library,
    write_scan_page,
)

CAR, ROAD, BUILDING = 0, 8, 12


def _scene(n_side: int = 40):
    """A flat road (x 0..20 m, y -5..5 m) with a car box on it; ids and a prediction with known errors."""
    u, v = np.meshgrid(np.linspace(0, 20, n_side), np.linspace(-5, 5, n_side))
    road = np.stack([u.ravel(), v.ravel(), np.full(u.size, -1.7)], 1)
    a, b = np.meshgrid(np.linspace(8, 12, 15), np.linspace(-1, 1, 15))
    car = np.stack([a.ravel(), b.ravel(), np.full(a.size, -0.5)], 1)
    points = np.concatenate([road, car]).astype(np.float32)
    truth = np.concatenate([np.full(len(road), ROAD), np.full(len(car), CAR)])
    truth[:5] = IGNORE_INDEX
    prediction = truth.copy()
    prediction[:5] = ROAD  # ignored in the truth -> "ignored"
    prediction[len(road) : len(road) + 20] = BUILDING  # 20 car points wrong
    return points, truth, prediction


def test_class_colouring_maps_ignore_to_the_grey_entry():
    points = np.zeros((4, 3), np.float32)
    truth = np.array([0, 18, IGNORE_INDEX, 5])
    (colouring,) = scan_colourings(points, SEMANTICKITTI, truth, None)
    assert colouring.key == "truth"
    assert colouring.values.dtype == np.uint8
    assert colouring.values.tolist() == [0, 18, 19, 5]
    assert tuple(colouring.palette[19]) == IGNORED_RGB
    assert tuple(colouring.palette[0]) == (100, 150, 245)  # SemanticKITTI car, official colour map
    assert colouring.names[18] == "traffic-sign" and colouring.names[19].startswith("ignored")


def test_error_colouring_hand_computed():
    truth = np.array([1, 2, 3, IGNORE_INDEX, 4, 4])
    pred = np.array([1, 0, 3, 7, IGNORE_INDEX, 4])
    c = error_colouring(truth, pred)
    assert c.values.tolist() == [0, 1, 0, 2, 1, 0]  # an ignore prediction on a labeled point is wrong
    assert c.label == "error (60.0% correct)"  # 3 of 5 labeled points
    assert [tuple(p) for p in c.palette] == list(ERROR_PALETTE)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1, 2, IGNORE_INDEX]), st.sampled_from([0, 1, 2])), min_size=1))
def test_error_colouring_counts(pairs):
    truth, pred = (np.array(column) for column in zip(*pairs, strict=True))
    values = error_colouring(truth, pred).values
    labeled = truth != IGNORE_INDEX
    assert (values == 2).sum() == (~labeled).sum()
    assert (values == 0).sum() == (labeled & (truth == pred)).sum()
    assert (values == 1).sum() == (labeled & (truth != pred)).sum()


def test_colourings_offered():
    points, truth, pred = _scene(4)
    keys = [c.key for c in scan_colourings(points, NUSCENES, truth % 16, pred % 16)]
    assert keys == ["truth", "prediction", "error"]
    assert [c.key for c in scan_colourings(points, SEMANTICKITTI, None, pred)] == ["prediction"]
    (height,) = scan_colourings(points, SEMANTICKITTI, None, None)
    assert height.key == "height" and np.array_equal(height.values, points[:, 2])


def test_bad_inputs_raise():
    points = np.zeros((3, 3))
    with pytest.raises(ValueError, match="shape"):
        scan_colourings(points, SEMANTICKITTI, np.zeros(4, int), None)
    with pytest.raises(ValueError, match=r"outside \[0, 19\)"):
        scan_colourings(points, SEMANTICKITTI, np.array([0, 19, 3]), None)
    with pytest.raises(ValueError, match="points must have shape"):
        scan_colourings(np.zeros((3, 2)), SEMANTICKITTI, None, None)


def test_stepped_colorscale_maps_each_value_to_its_colour():
    palette = np.array([(1, 2, 3), (10, 20, 30), (200, 100, 0)], np.uint8)
    scale = stepped_colorscale(palette)
    positions = np.array([s[0] for s in scale])
    k = len(palette)
    for value in range(k):
        # plotly normalises with cmin = -0.5, cmax = K - 0.5: value v sits at (v + 0.5) / K
        t = (value + 0.5) / k
        below = scale[np.flatnonzero(positions <= t)[-1]][1]
        above = scale[np.flatnonzero(positions >= t)[0]][1]
        expected = "rgb({},{},{})".format(*palette[value])
        assert below == above == expected
    assert positions[0] == 0.0 and positions[-1] == 1.0 and np.all(np.diff(positions) >= 0)


def test_page_figure_one_scan_trace_and_colouring_buttons(tmp_path):
    points, truth, pred = _scene(10)
    page = write_scan_page(tmp_path / "scan.html", points, SEMANTICKITTI, truth, pred, "test <scan>")
    text = page.read_text()
    assert "<title>test &lt;scan&gt;</title>" in text
    figure = page_figure(text)
    roles = [t["meta"]["role"] for t in figure["data"]]
    assert roles[0] == "scan" and roles.count("scan") == 1  # one trace of points, not one per colouring
    scan = figure["data"][0]
    x = decode_array(scan["x"])
    assert x.dtype == np.float32 and np.array_equal(x, points[:, 0])
    colours = figure_colourings(figure)
    assert list(colours) == ["truth", "prediction", "error"]
    assert all(c.dtype == np.uint8 for c in colours.values())
    assert np.array_equal(colours["truth"], np.where(truth == IGNORE_INDEX, 19, truth))
    assert np.array_equal(colours["prediction"], pred)
    expected_error = np.where(truth == IGNORE_INDEX, 2, np.where(pred == truth, 0, 1))
    assert np.array_equal(colours["error"], expected_error) and (colours["error"] == 1).sum() == 20
    assert "color" not in scan["marker"]  # one copy of each colouring: the page's script copies the first
    # The legend: 19 classes + ignored, then correct / wrong / ignored; the scan trace is not in it.
    legend = figure["data"][1:]
    assert [t["name"] for t in legend[:3]] == ["car", "bicycle", "motorcycle"]
    assert len(legend) == 20 + 3 and not scan["showlegend"]
    buttons = figure["layout"]["updatemenus"][0]["buttons"]
    assert [b["label"] for b in buttons] == ["ground truth", "prediction", "error (93.8% correct)"]
    for button, key in zip(buttons, ["truth", "prediction", "error"], strict=True):
        change = button["args"][0]
        assert button["method"] == "restyle" and len(change["visible"]) == len(figure["data"])
        shown = {t["meta"]["group"] for t, v in zip(legend, change["visible"][1:], strict=True) if v}
        assert change["visible"][0] is True and shown == {"error" if key == "error" else "classes"}
        # legend entries keep their own colours; the scan's colour scale spans its palette
        assert change["marker.color"][1:] == [t["marker"]["color"] for t in legend]
        assert change["marker.cmax"][0] == (2.5 if key == "error" else 19.5)


def test_height_page_when_no_labels(tmp_path):
    points, _, _ = _scene(6)
    page = write_scan_page(tmp_path / "h.html", points, SEMANTICKITTI, None, None, "h")
    figure = page_figure(page.read_text())
    assert len(figure["data"]) == 1 and not figure["layout"]["showlegend"]
    heights = figure_colourings(figure)["height"]
    assert heights.dtype == np.float32 and np.array_equal(heights, points[:, 2])
    change = figure["layout"]["updatemenus"][0]["buttons"][0]["args"][0]
    assert change["marker.cmin"] == [pytest.approx(-1.7)] and change["marker.cmax"] == [pytest.approx(-0.5)]


def test_inline_and_shared_library_variants(tmp_path):
    from plotly.offline import get_plotlyjs

    points, truth, pred = _scene(10)
    inline = write_scan_page(tmp_path / "inline.html", points, SEMANTICKITTI, truth, None, "inline")
    shared = write_scan_page(
        tmp_path / "pages" / "a.html", points, SEMANTICKITTI, truth, pred, "a", library_src=LIBRARY_NAME
    )
    library = write_plotly_library(tmp_path / "pages")
    assert library == tmp_path / "pages" / LIBRARY_NAME
    bundle = get_plotlyjs()
    assert library.read_text() == bundle
    assert bundle in inline.read_text() and f'src="{LIBRARY_NAME}"' not in inline.read_text()
    assert bundle[:2000] not in shared.read_text()
    assert '<script type="text/javascript" src="plotly.min.js"></script>' in shared.read_text()
    assert shared.stat().st_size < inline.stat().st_size - len(bundle) // 2
    before = library.stat().st_mtime_ns
    assert write_plotly_library(tmp_path / "pages") == library
    assert library.stat().st_mtime_ns == before  # written once, left alone afterwards
    assert not list((tmp_path / "pages").glob(".*.tmp"))  # atomic writes leave no temporary files


# ----------------------------------------------------------------------------------------------------------
# In a real browser. CI installs chromium (.ci/run); only a machine without it skips these.

needs_chromium = pytest.mark.skipif(
    chromium_path() is None, reason="chromium not installed (apt-get install chromium; CI's .ci/run does)"
)

GD = "document.getElementById('scan')"
DRAWN = (
    'document.body && (document.body.getAttribute("data-drawn") || document.body.getAttribute("data-error"))'
)


def _pixels_near(image: np.ndarray, rgb, tolerance: int = 12) -> int:
    return int((np.abs(image[..., :3].astype(int) - np.array(rgb)).max(axis=-1) <= tolerance).sum())


def _screenshot(browser: Chromium, path) -> np.ndarray:
    from PIL import Image

    browser.evaluate("new Promise(r => setTimeout(r, 500))")  # let WebGL's next frames land
    image = np.asarray(Image.open(browser.screenshot(path)).convert("RGB"))
    return image[:, : image.shape[1] * 4 // 5]  # the scene without the legend (its colour squares)


@pytest.fixture(scope="module")
def browser():
    with Chromium(width=900, height=700, timeout_s=180) as chromium:
        yield chromium


@needs_chromium
@pytest.mark.slow
def test_browser_draws_and_switches(tmp_path, browser):
    points, truth, pred = _scene(40)
    page = write_scan_page(tmp_path / "scan.html", points, SEMANTICKITTI, truth, pred, "browser test")
    browser.open(page.as_uri())
    assert browser.wait_for(DRAWN) == "1", browser.evaluate('document.body.getAttribute("data-error")')
    assert browser.evaluate("document.querySelectorAll('#scan canvas').length") >= 1
    # One trace of points, coloured by the truth; only the class legend shown.
    assert browser.evaluate(f"{GD}.data.filter(t => t.meta.role === 'scan').length") == 1
    assert browser.evaluate(f"{GD}._fullData[0]._length") == len(points)
    assert browser.evaluate(f"{GD}.data[0].text[{len(points) - 1}]") == "car"
    shown = f"{GD}.data.filter((t, i) => {GD}._fullData[i].visible === true && t.meta.group)"
    legend_shown = f"[...new Set({shown}.map(t => t.meta.group))]"
    assert browser.evaluate(legend_shown) == ["classes"]
    image = _screenshot(browser, tmp_path / "truth.png")
    road, car = SEMANTICKITTI.colors[ROAD], SEMANTICKITTI.colors[CAR]
    assert _pixels_near(image, road) > 500 and _pixels_near(image, car) > 50
    assert _pixels_near(image, ERROR_PALETTE[1]) < 20  # no "wrong" red yet
    # Click the "error" button as a user would.
    box = browser.evaluate(
        "(() => { const r = document.querySelectorAll('.updatemenu-button')[2].getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    for kind in ("mousePressed", "mouseReleased"):
        browser.call(
            "Input.dispatchMouseEvent",
            {"type": kind, "x": box[0], "y": box[1], "button": "left", "buttons": 1, "clickCount": 1},
        )
    browser.wait_for(f"{GD}._fullData[0].marker.cmax === 2.5")
    assert browser.evaluate(legend_shown) == ["error"]
    assert browser.evaluate(f"{GD}._fullData[0]._length") == len(points)
    assert browser.evaluate(f"{GD}.data[0].text[{len(points) - 1}]") == "correct"
    image = _screenshot(browser, tmp_path / "error.png")
    assert _pixels_near(image, ERROR_PALETTE[0]) > 500  # correct: green
    assert _pixels_near(image, ERROR_PALETTE[1]) > 5  # the 20 wrong car points: red
    assert _pixels_near(image, road) < 20  # the class colours are gone


@needs_chromium
@pytest.mark.slow
def test_browser_shared_library_page_needs_its_library(tmp_path, browser):
    points, truth, _ = _scene(20)
    folder = tmp_path / "report"
    page = write_scan_page(
        folder / "a.html", points, SEMANTICKITTI, truth, None, "a", library_src=LIBRARY_NAME
    )
    browser.open(page.as_uri())
    browser.evaluate("new Promise(r => setTimeout(r, 1500))")
    assert browser.evaluate("typeof Plotly") == "undefined"  # nothing inlined: without the copy, no plot
    assert not browser.evaluate(DRAWN)
    write_plotly_library(folder)
    browser.open(page.as_uri())
    assert browser.wait_for(DRAWN) == "1"
    image = _screenshot(browser, tmp_path / "shared.png")
    assert _pixels_near(image, SEMANTICKITTI.colors[ROAD]) > 200


def test_negative_software_max_points_raises(tmp_path):
    points, truth, _ = _scene(10)
    with pytest.raises(ValueError, match="software_max_points"):
        write_scan_page(tmp_path / "a.html", points, SEMANTICKITTI, truth, None, "a", software_max_points=-1)


@needs_chromium
@pytest.mark.slow
def test_browser_thins_the_scan_on_software_webgl(tmp_path, browser):
    """Headless chromium draws WebGL with SwiftShader: a page over its point limit draws one point in k, in
    the same order, with each colouring and hover text thinned alike, and says so; ?points=all draws all."""
    points, truth, pred = _scene(40)  # 1600 road + 225 car points
    n = len(points)
    page = write_scan_page(
        tmp_path / "scan.html", points, SEMANTICKITTI, truth, pred, "thin", software_max_points=500
    )
    browser.open(page.as_uri())
    assert browser.wait_for(DRAWN) == "1", browser.evaluate('document.body.getAttribute("data-error")')
    assert "swiftshader" in browser.evaluate('document.body.getAttribute("data-renderer")').lower()
    assert browser.evaluate('document.body.getAttribute("data-software")') == "1"
    step = -(-n // 500)  # ceil: 4
    shown = len(range(0, n, step))
    assert browser.evaluate('document.body.getAttribute("data-points-shown")') == str(shown)
    assert browser.evaluate(f"{GD}._fullData[0]._length") == shown
    xs = np.array(browser.evaluate(f"Array.from({GD}.data[0].x)"), dtype=np.float32)
    np.testing.assert_array_equal(xs, points[::step, 0])
    text = browser.evaluate(f"{GD}.data[0].text")
    names = (*SEMANTICKITTI.class_names, "ignored (no label)")
    expected = [names[t] if t != IGNORE_INDEX else names[-1] for t in truth[::step]]
    assert text == expected
    title = browser.evaluate(f"{GD}.layout.title.text")
    assert f"1 point in {step} drawn ({shown:,} of {n:,})" in title and "?points=all" in title
    # every button's colouring is thinned alike
    colours = f"{GD}.layout.updatemenus[0].buttons.map(b => b.args[0]['marker.color'][0].length)"
    lengths = browser.evaluate(colours)
    assert lengths == [shown] * 3
    browser.open(page.as_uri() + "?points=all")
    # the new document's marks (the old one's may still answer right after the navigation starts)
    browser.wait_for(f'{DRAWN} && document.body.getAttribute("data-points-shown") === "{n}"')
    assert browser.evaluate(f"{GD}._fullData[0]._length") == n
    assert "1 point in" not in browser.evaluate(f"{GD}.layout.title.text")
