"""An offline, interactive 3D page of one LiDAR scan (plotly ``scatter3d`` in WebGL): orbit, zoom, and switch
the colouring between ground truth, prediction and error with buttons; a legend names the classes in the
dataset's official colours.

Kept light enough for a full 120k-point scan: ONE ``scatter3d`` trace of the points (coordinates stored once
as float32, plotly's base64 typed arrays), coloured by one uint8 palette index per point mapped through a
stepped colour scale; each colouring's button restyles that trace's ``marker.color`` and colour scale (and
shows its legend entries), so the browser holds one trace of points whatever the number of colourings. The
legend is drawn by point-less dummy traces. The page marks its ``<body>`` with ``data-drawn="1"`` (and
``data-draw-ms``, the milliseconds from navigation start) once plotly has drawn it, so a headless browser can
tell that it drew.

Software WebGL. Drawn by a GPU, an orbit move of a 120k-point page costs the browser's main thread 30-40 ms
of script; drawn by a software rasterizer (SwiftShader, llvmpipe: a browser with no GPU, a remote desktop) the
same move costs seconds, in proportion to the points (``benchmarks/results/scan_page.json``). So the page asks
WebGL which renderer it has and, on a software one, draws one point in k, at most ``software_max_points``
of them, and says so in its title; ``?points=all`` after the page's address draws every point anyway. The
page records what it did on ``<body>``: ``data-renderer`` (the WebGL renderer's name), ``data-software``
(``"1"`` / ``"0"``) and ``data-points-shown``.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerfseg.data.labelmaps import LabelMap
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.io_utils import atomic_write_bytes, atomic_write_text

LIBRARY_NAME = "plotly.min.js"
IGNORED_RGB = (150, 150, 150)
ERROR_PALETTE = ((40, 190, 80), (235, 30, 40), IGNORED_RGB)
ERROR_NAMES = ("correct", "wrong", "ignored (no label)")
BACKGROUND = "#101014"
MARKER_SIZE_PX = 1.6
# Points drawn at most on a software WebGL renderer (one point in k; 0 = all): chosen by
# benchmarks/bench_scan_page.py: an orbit move in headless chromium's SwiftShader costs 25-45 us a point.
SOFTWARE_MAX_POINTS = 15_000


@dataclass(frozen=True)
class Colouring:
    """One way to colour the scan.

    Attributes:
        key: ``"truth"``, ``"prediction"``, ``"error"`` or ``"height"``.
        label: the button's text.
        values: (N,) uint8 palette index per point (``"height"``: (N,) float32 z in metres).
        palette: (K, 3) uint8 RGB of each palette index (empty for ``"height"``, which uses a colour scale).
        names: (K,) legend name of each palette index.
    """

    key: str
    label: str
    values: np.ndarray
    palette: np.ndarray
    names: tuple[str, ...]


def write_plotly_library(directory: Path) -> Path:
    """Write plotly's JS bundle once as ``directory/'plotly.min.js'`` (atomically); return its path.

    A file that already holds the same bundle is left untouched.
    """
    from plotly.offline import get_plotlyjs

    data = get_plotlyjs().encode("utf-8")
    path = Path(directory) / LIBRARY_NAME
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return path
    return atomic_write_bytes(path, data)


def class_colouring(key: str, label: str, ids: np.ndarray, label_map: LabelMap) -> Colouring:
    """Colour (N,) train ids by class: palette index = train id, IGNORE_INDEX -> the last index (grey)."""
    values = np.where(ids == IGNORE_INDEX, label_map.num_classes, ids).astype(np.uint8)
    palette = np.concatenate([label_map.colors, np.array([IGNORED_RGB], np.uint8)])
    return Colouring(key, label, values, palette, (*label_map.class_names, "ignored (no label)"))


def error_colouring(truth: np.ndarray, prediction: np.ndarray) -> Colouring:
    """Colour (N,) train ids: 0 correct, 1 wrong, 2 ignored (no ground truth). A prediction of IGNORE_INDEX on
    a labeled point counts as wrong, as the official scoring counts it. The button states the accuracy."""
    labeled = truth != IGNORE_INDEX
    values = np.where(labeled, np.where(prediction == truth, 0, 1), 2).astype(np.uint8)
    accuracy = float((values == 0).sum() / max(int(labeled.sum()), 1))
    label = f"error ({100 * accuracy:.1f}% correct)" if labeled.any() else "error (no labeled point)"
    return Colouring("error", label, values, np.array(ERROR_PALETTE, np.uint8), ERROR_NAMES)


def _check_ids(ids: np.ndarray | None, n: int, label_map: LabelMap, what: str) -> np.ndarray | None:
    if ids is None:
        return None
    ids = np.asarray(ids)
    if ids.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},) (one train id per point), got {ids.shape}")
    ids = ids.astype(np.int64)
    bad = (ids != IGNORE_INDEX) & ((ids < 0) | (ids >= label_map.num_classes))
    if bad.any():
        raise ValueError(
            f"{what} holds ids outside [0, {label_map.num_classes}) and {IGNORE_INDEX}: "
            f"{np.unique(ids[bad]).tolist()[:10]}"
        )
    return ids


def scan_colourings(
    points: np.ndarray, label_map: LabelMap, truth: np.ndarray | None, prediction: np.ndarray | None
) -> list[Colouring]:
    """The colourings a page offers: ground truth, prediction and error where given; height when neither is.

    Args:
        points: (N, >=3) float metres (lidar frame).
        truth / prediction: (N,) int train ids or IGNORE_INDEX, or None.
    Raises:
        ValueError: wrong shapes or ids outside the label map.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points must have shape (N, 3), got {points.shape}")
    n = points.shape[0]
    truth = _check_ids(truth, n, label_map, "truth")
    prediction = _check_ids(prediction, n, label_map, "prediction")
    colourings = []
    if truth is not None:
        colourings.append(class_colouring("truth", "ground truth", truth, label_map))
    if prediction is not None:
        colourings.append(class_colouring("prediction", "prediction", prediction, label_map))
    if truth is not None and prediction is not None:
        colourings.append(error_colouring(truth, prediction))
    if not colourings:
        z = points[:, 2].astype(np.float32)
        colourings.append(Colouring("height", "height", z, np.zeros((0, 3), np.uint8), ()))
    return colourings


def _rgb(color) -> str:
    return f"rgb({int(color[0])},{int(color[1])},{int(color[2])})"


def stepped_colorscale(palette: np.ndarray) -> list[list]:
    """A plotly colour scale that maps value k in [0, K) to ``palette[k]`` exactly, with cmin = -0.5 and
    cmax = K - 0.5: two stops per colour at the edges of its bin."""
    k = len(palette)
    scale = []
    for i, color in enumerate(palette):
        scale += [[i / k, _rgb(color)], [(i + 1) / k, _rgb(color)]]
    return scale


def _typed_array(values: np.ndarray) -> dict:
    """(N,) uint8 or float32 as plotly's base64 typed-array spec (little-endian)."""
    values = np.ascontiguousarray(values)
    dtype = {np.dtype(np.uint8): "u1", np.dtype(np.float32): "f4"}[values.dtype]
    return {"dtype": dtype, "bdata": base64.b64encode(values.astype(values.dtype.newbyteorder("<"))).decode()}


def _legend_group(key: str) -> str | None:
    return None if key == "height" else ("error" if key == "error" else "classes")


def scan_figure(points: np.ndarray, colourings: list[Colouring], title: str):
    """The plotly Figure: ONE ``scatter3d`` trace of the scan (trace 0, styled for the first colouring), one
    dummy legend trace per palette entry, and one button per colouring that restyles trace 0's
    ``marker.color`` / colour scale and shows that colouring's legend entries.

    Each button's ``args[0]`` holds, per trace (trace 0 first, then the legend traces), the colouring's
    (N,) palette indices (or heights) as a base64 typed array, its colour scale, cmin / cmax and the
    legend traces' visibility; its ``name`` is the colouring's key. The page's script decodes the arrays
    once, adds the hover text (class names) and gives trace 0 the first button's colours before plotting
    (trace 0 holds no colour array as written).

    Args:
        points: (N, >=3) float metres (lidar frame).
        colourings: from :func:`scan_colourings`; the first is shown first.
    """
    import plotly.graph_objects as go

    xyz = np.asarray(points)[:, :3].astype(np.float32)
    legend_groups: dict[str, Colouring] = {}
    for c in colourings:
        group = _legend_group(c.key)
        if group is not None:
            legend_groups.setdefault(group, c)
    legend = [
        (group, name, _rgb(color))
        for group, c in legend_groups.items()
        for name, color in zip(c.names, c.palette, strict=True)
    ]  # fmt: skip
    styles = {}
    for c in colourings:
        if c.key == "height":
            style = dict(colorscale="Turbo", cmin=float(c.values.min()), cmax=float(c.values.max()))
            style.update(showscale=True, hovertemplate="z %{marker.color:.2f} m")
        else:
            style = dict(colorscale=stepped_colorscale(c.palette), cmin=-0.5, cmax=len(c.palette) - 0.5)
            style.update(showscale=False, hovertemplate="%{text}")
        style["hovertemplate"] += "<br>x %{x:.2f} y %{y:.2f} z %{z:.2f} m<extra></extra>"
        styles[c.key] = style
    first, style = colourings[0], styles[colourings[0].key]
    # Squares: 6 triangles a point where a circle glyph takes 23 (about 2x faster in software GL). No colour
    # here: the page's script gives trace 0 the first button's array (one copy of it in the page).
    marker = dict(size=MARKER_SIZE_PX, symbol="square", line=dict(width=0), opacity=1.0)
    marker.update(colorscale=style["colorscale"], cmin=style["cmin"], cmax=style["cmax"])
    marker.update(showscale=style["showscale"], colorbar=dict(title=dict(text="z (m)")))
    traces = [
        go.Scatter3d(
            x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], mode="markers", marker=marker, name="scan",
            showlegend=False, hovertemplate=style["hovertemplate"],
            meta=dict(role="scan", names={c.key: list(c.names) for c in colourings}),
        )
    ]  # fmt: skip
    first_group = _legend_group(first.key)
    for group, name, color in legend:
        traces.append(
            go.Scatter3d(
                x=[None], y=[None], z=[None], mode="markers", name=name, legendgroup=group,
                marker=dict(size=8, color=color, symbol="square"), hoverinfo="skip",
                visible=group == first_group, meta=dict(role="legend", group=group),
            )
        )  # fmt: skip
    buttons = []
    for c in colourings:
        style, group = styles[c.key], _legend_group(c.key)
        spec = _typed_array(c.values)
        # Per trace: trace 0 gets the colouring; each legend trace keeps its own colour (None: unset).
        unset = [None] * len(legend)
        change = {
            "marker.color": [spec, *(color for _, _, color in legend)],
            "marker.colorscale": [style["colorscale"], *unset],
            "marker.cmin": [style["cmin"], *unset],
            "marker.cmax": [style["cmax"], *unset],
            "marker.showscale": [style["showscale"], *unset],
            "hovertemplate": [style["hovertemplate"], *unset],
            "visible": [True, *(g == group for g, _, _ in legend)],
        }
        buttons.append(dict(label=c.label, name=c.key, method="restyle", args=[change]))
    axis = dict(
        title=dict(text=""), showbackground=False, gridcolor="#333", zerolinecolor="#555", color="#aaa"
    )
    layout = go.Layout(
        template="none",
        title=dict(text=html.escape(title), font=dict(color="#ddd", size=15), x=0.01, y=0.98),
        paper_bgcolor=BACKGROUND,
        plot_bgcolor=BACKGROUND,
        margin=dict(l=0, r=0, t=36, b=0),
        scene=dict(
            xaxis=dict(axis, title=dict(text="x (m)")),
            yaxis=dict(axis, title=dict(text="y (m)")),
            zaxis=dict(axis, title=dict(text="z (m)")),
            aspectmode="data",
            bgcolor=BACKGROUND,
            camera=dict(eye=dict(x=-1.0, y=-1.0, z=0.7), up=dict(x=0, y=0, z=1)),
            dragmode="orbit",
        ),
        legend=dict(
            font=dict(color="#ddd", size=12),
            bgcolor="rgba(16,16,20,0.7)",
            itemclick=False,
            itemdoubleclick=False,
            x=1.0,
            xanchor="right",
            y=1.0,
            title=dict(text=""),
        ),  # fmt: skip
        updatemenus=[
            dict(
                type="buttons",
                direction="right",
                buttons=buttons,
                active=0,
                x=0.01,
                xanchor="left",
                y=0.93,
                yanchor="top",
                bgcolor="#8a8a99",
                bordercolor="#444",
                font=dict(color="#111"),
                showactive=True,
            )
        ],  # fmt: skip
        showlegend=bool(legend),
    )
    return go.Figure(data=traces, layout=layout)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>html, body {{ margin: 0; height: 100%; background: {background}; overflow: hidden; }}
#scan {{ width: 100vw; height: 100vh; }}</style>
{library}
</head>
<body>
<div id="scan"></div>
<script>
(function () {{
  "use strict";
  var fig = {figure};
  var SOFTWARE_MAX_POINTS = {software_max_points};
  var TYPES = {{u1: Uint8Array, f4: Float32Array}};
  function decode(spec) {{
    if (!spec || !spec.bdata) return spec;
    var text = atob(spec.bdata), raw = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) raw[i] = text.charCodeAt(i);
    return new TYPES[spec.dtype](raw.buffer);
  }}
  function webglRenderer() {{
    try {{
      var gl = document.createElement("canvas").getContext("webgl");
      if (!gl) return "";
      var info = gl.getExtension("WEBGL_debug_renderer_info");
      var name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
      var lose = gl.getExtension("WEBGL_lose_context");
      if (lose) lose.loseContext();
      return name;
    }} catch (e) {{
      return "";
    }}
  }}
  // On a software rasterizer draw every step-th point (at most SOFTWARE_MAX_POINTS) unless ?points=all.
  var scan = fig.data[0], names = scan.meta.names, buttons = fig.layout.updatemenus[0].buttons;
  scan.x = decode(scan.x); scan.y = decode(scan.y); scan.z = decode(scan.z);
  var total = scan.x.length, renderer = webglRenderer();
  var software = /swiftshader|llvmpipe|softpipe|software|basic render/i.test(renderer);
  var every = /[?&]points=all(&|$)/.test(location.search);
  var step = software && !every && SOFTWARE_MAX_POINTS > 0 && total > SOFTWARE_MAX_POINTS
    ? Math.ceil(total / SOFTWARE_MAX_POINTS) : 1;
  function thin(a) {{
    if (step === 1) return a;
    var out = new a.constructor(Math.ceil(a.length / step));
    for (var i = 0; i < out.length; i++) out[i] = a[i * step];
    return out;
  }}
  scan.x = thin(scan.x); scan.y = thin(scan.y); scan.z = thin(scan.z);
  if (step > 1) {{
    fig.layout.title.text += "<br><sub>software WebGL: 1 point in " + step + " drawn (" +
      scan.x.length.toLocaleString("en") + " of " + total.toLocaleString("en") +
      "); add ?points=all to the address for all</sub>";
  }}
  // Decode each button's colouring once; class colourings get their hover text (one class name a point).
  buttons.forEach(function (button) {{
    var change = button.args[0], labels = names[button.name];
    var values = thin(decode(change["marker.color"][0]));
    change["marker.color"][0] = values;
    change.text = change["marker.color"].map(function () {{ return null; }});
    if (labels.length) {{
      var text = new Array(values.length);
      for (var i = 0; i < values.length; i++) text[i] = labels[values[i]];
      change.text[0] = text;
    }}
  }});
  scan.marker.color = buttons[0].args[0]["marker.color"][0];
  scan.text = buttons[0].args[0].text[0] || undefined;
  document.body.setAttribute("data-renderer", renderer);
  document.body.setAttribute("data-software", software ? "1" : "0");
  document.body.setAttribute("data-points-shown", String(scan.x.length));
  var div = document.getElementById("scan");
  Plotly.newPlot(div, fig.data, fig.layout, {{responsive: true, displaylogo: false}}).then(function (gd) {{
    document.body.setAttribute("data-drawn", "1");
    document.body.setAttribute("data-draw-ms", String(Math.round(performance.now())));
  }}, function (err) {{
    document.body.setAttribute("data-error", String(err));
  }});
}})();
</script>
</body>
</html>
"""


def write_scan_page(
    out_html: Path,
    points: np.ndarray,
    label_map: LabelMap,
    truth: np.ndarray | None,
    prediction: np.ndarray | None,
    title: str,
    library_src: str | None = None,
    software_max_points: int = SOFTWARE_MAX_POINTS,
) -> Path:
    """Write the interactive 3D page of one scan (atomically); return its path.

    Args:
        out_html: the page to write.
        points: (N, 3) float metres (lidar frame); extra columns are ignored.
        label_map: the dataset's classes and colours.
        truth / prediction: (N,) int train ids, IGNORE_INDEX = ignored; None where not available. With both,
            the page also offers the error colouring (correct / wrong / ignored); with neither, height.
        title: shown on the page and as its ``<title>``.
        library_src: None -> plotly's library is inlined (a self-contained page, what ``nerfseg view``
            writes by default); a relative path (e.g. ``'plotly.min.js'``) -> ``<script src=...>`` to one
            shared copy beside the pages (see :func:`write_plotly_library`).
        software_max_points: on a software WebGL renderer the page draws one point in k, at most this
            many (0 = every point; ``?points=all`` in the address overrides it in the browser).
    Raises:
        ValueError: wrong shapes or ids outside the label map, or a negative ``software_max_points``.
    """
    if software_max_points < 0:
        raise ValueError(f"software_max_points must be >= 0 (0 = every point), got {software_max_points}")
    colourings = scan_colourings(points, label_map, truth, prediction)
    figure = scan_figure(points, colourings, title)
    figure_json = json.dumps(json.loads(figure.to_json(validate=False)), separators=(",", ":"))
    figure_json = figure_json.replace("</", "<\\/")  # no "</script>" inside the script
    if library_src is None:
        from plotly.offline import get_plotlyjs

        library = f'<script type="text/javascript">{get_plotlyjs()}</script>'
    else:
        library = f'<script type="text/javascript" src="{html.escape(library_src, quote=True)}"></script>'
    page = _PAGE.format(
        title=html.escape(title), background=BACKGROUND, library=library, figure=figure_json,
        software_max_points=int(software_max_points),
    )  # fmt: skip
    return atomic_write_text(out_html, page)


def page_figure(page_html: str) -> dict:
    """The plotly figure (``{"data": [...], "layout": {...}}``) a page of :func:`write_scan_page` holds, as
    written (before its script decodes the buttons' arrays and adds the hover text)."""
    start = page_html.index("var fig = ") + len("var fig = ")
    end = page_html.index(";\n", start)
    return json.loads(page_html[start:end].replace("<\\/", "</"))


def decode_array(value) -> np.ndarray:
    """A figure array as numpy: plotly base64 typed-array spec (``{"dtype": "u1", "bdata": ..}``) or list."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(
            base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]).newbyteorder("<")
        )
    return np.asarray(value)


def figure_colourings(figure: dict) -> dict[str, np.ndarray]:
    """Each colouring a page's figure (from :func:`page_figure`) offers, by key (``"truth"``, ...), in button
    order: (N,) uint8 palette indices (``"height"``: (N,) float32 metres), decoded from the buttons."""
    buttons = figure["layout"]["updatemenus"][0]["buttons"]
    return {b["name"]: decode_array(b["args"][0]["marker.color"][0]) for b in buttons}
