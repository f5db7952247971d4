"""The Markdown of a comparison report: the score table (one row per run) and the blocks around it. Pure text
from already computed numbers; nothing here evaluates anything."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class ScoreRow:
    """One run's line of the table.

    Attributes:
        name: the run's name in the report; method: its training method; labels: what it was trained on
            (e.g. ``"12.5 % of 16 scans"``); steps: optimiser steps of its checkpoint.
        miou / accuracy: fractions in [0, 1] (NaN = undefined); per_class_iou: (C,) fractions (NaN too).
    """

    name: str
    method: str
    labels: str
    steps: int
    miou: float
    accuracy: float
    per_class_iou: Sequence[float]


def percent(value: float | None, digits: int = 1) -> str:
    """``0.4567`` -> ``"45.7"``; None / NaN -> ``"n/a"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100.0 * value:.{digits}f}"


def escape_cell(text: str) -> str:
    """Text safe inside a Markdown table cell (pipes escaped, newlines flattened)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def score_table(rows: Sequence[ScoreRow], class_names: Sequence[str]) -> str:
    """Markdown table: run, method, labels, steps, mIoU, accuracy, then one IoU column per class, all in
    percent; the best mIoU and the best IoU of each class in bold (only where several runs differ and the
    best is above zero)."""
    header = ["run", "method", "labels", "steps", "mIoU (%)", "accuracy (%)", *class_names]
    lines = [
        "| " + " | ".join(escape_cell(h) for h in header) + " |",
        "|" + "|".join(["---"] * 4 + ["---:"] * (2 + len(class_names))) + "|",
    ]

    def best(values: list[float]) -> float | None:
        """The top value, when there is a contest: several runs, above zero, not all tied."""
        finite = [v for v in values if not math.isnan(v)]
        if len(rows) < 2 or not finite or max(finite) <= 0 or min(finite) == max(finite):
            return None
        return max(finite)

    for r in rows:
        if len(r.per_class_iou) != len(class_names):
            raise ValueError(f"run {r.name}: {len(r.per_class_iou)} IoUs for {len(class_names)} classes")
    best_miou = best([r.miou for r in rows])
    best_class = [best([float(r.per_class_iou[c]) for r in rows]) for c in range(len(class_names))]

    def cell(value: float, top: float | None) -> str:
        text = percent(value)
        return f"**{text}**" if top is not None and not math.isnan(value) and value == top else text

    for r in rows:
        cells = [
            escape_cell(r.name),
            escape_cell(r.method),
            escape_cell(r.labels),
            str(r.steps),
            cell(r.miou, best_miou),
            percent(r.accuracy),
        ]
        cells += [cell(float(v), best_class[c]) for c, v in enumerate(r.per_class_iou)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_list(items: Sequence[str]) -> str:
    """``- item`` lines."""
    return "\n".join(f"- {item}" for item in items)


def image_link(path: str, alt: str) -> str:
    """Markdown image with a relative path."""
    return f"![{escape_cell(alt)}]({path})"
