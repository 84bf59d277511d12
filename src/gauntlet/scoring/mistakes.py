"""Error analysis of the candidate on the test rows: what to read before deciding what to fix.

Classification: the K mistakes it was most sure of (row id, label, prediction, its probability, the
raw row's date), the class pairs it confuses most, and, for image-shaped rows (`model.image_shape`),
a PNG gallery of those mistakes. Rows the label-error ledger already suspects or confirms are marked:
a confident mistake there may be a wrong label rather than a wrong model. Regression has no classes
to confuse: the K largest absolute residuals instead.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gauntlet import layout, plots, storage
from gauntlet.logs import get_logger
from gauntlet.scoring.metrics import REGRESSION
from gauntlet.training.data import Split

TOP_MISTAKES = 16  # a 4 x 4 gallery
TOP_PAIRS = 10
GALLERY_NAME = "mistakes.png"
CAPTION_LENGTH = 26  # characters that fit over one 2-inch image
log = get_logger("gauntlet.evaluate")


def ledger_marks(store: str, dataset: str) -> dict[str, str]:
    """Row id -> its status in the dataset's label-error ledger (suspected, confirmed); {} without a ledger."""
    try:
        ledger = storage.get_json(layout.ledger_uri(store, dataset))
    except FileNotFoundError:
        return {}
    return {str(row): str(entry.get("status", "suspected")) for row, entry in ledger.get("entries", {}).items()}


def image_shape_of(params: Mapping[str, Any]) -> tuple[int, ...]:
    """The experiment's `model.image_shape` (its record's params), () when its rows are not images."""
    return tuple(int(v) for v in (params.get("model") or {}).get("image_shape") or ())


def _names(class_names: Sequence[str], n_classes: int) -> list[str]:
    return [str(c) for c in class_names] if class_names else [str(k) for k in range(n_classes)]


def most_confident_mistakes(
    test: Split,
    proba: np.ndarray,
    class_names: Sequence[str] = (),
    marks: Mapping[str, str] | None = None,
    k: int = TOP_MISTAKES,
) -> list[dict[str, Any]]:
    """The k wrong rows with the highest top-class probability, most confident first (test order on
    ties); `ledger` is the row's ledger status, or "" when the ledger does not list it."""
    p = np.asarray(proba, dtype=np.float64)
    predicted, confidence = p.argmax(axis=1), p.max(axis=1)
    wrong = np.flatnonzero(predicted != test.labels)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:k]
    names, marks, dates = _names(class_names, p.shape[1]), marks or {}, test.frame["date"].astype(str).to_numpy()
    return [
        {
            "row_id": str(test.ids[i]),
            "date": str(dates[i]),
            "label": names[int(test.labels[i])],
            "prediction": names[int(predicted[i])],
            "probability": round(float(confidence[i]), 4),
            "ledger": marks.get(str(test.ids[i]), ""),
        }
        for i in order
    ]


def confused_pairs(
    labels: np.ndarray, proba: np.ndarray, class_names: Sequence[str] = (), n: int = TOP_PAIRS
) -> list[dict[str, Any]]:
    """The n (label, prediction) pairs with the most wrong rows, most first (then by class order)."""
    p = np.asarray(proba)
    k = p.shape[1]
    counts = np.bincount(np.asarray(labels, dtype=np.int64) * k + p.argmax(axis=1), minlength=k * k).reshape(k, k)
    np.fill_diagonal(counts, 0)
    flat = np.argsort(-counts.ravel(), kind="stable")
    names = _names(class_names, k)
    pairs = [divmod(int(cell), k) for cell in flat[:n] if counts.flat[cell] > 0]
    return [{"label": names[t], "prediction": names[q], "rows": int(counts[t, q])} for t, q in pairs]


def largest_residuals(test: Split, predicted: np.ndarray, k: int = TOP_MISTAKES) -> list[dict[str, Any]]:
    """The k rows with the largest |actual - predicted|, largest first."""
    values = np.asarray(predicted, dtype=np.float64).reshape(-1)
    residual = test.labels.astype(np.float64) - values
    order = np.argsort(-np.abs(residual), kind="stable")[:k]
    dates = test.frame["date"].astype(str).to_numpy()
    return [
        {
            "row_id": str(test.ids[i]),
            "date": str(dates[i]),
            "label": float(test.labels[i]),
            "prediction": float(values[i]),
            "residual": float(residual[i]),
        }
        for i in order
    ]


def draw_gallery(
    test: Split, mistakes: Sequence[Mapping[str, Any]], image_shape: Sequence[int], path: Path, title: str
) -> Path:
    """Each mistake's row (its features) as an image of `image_shape`, captioned label→prediction p=..
    and its row id; rows in the label-error ledger are red and say so."""
    where = {row: i for i, row in enumerate(test.ids.tolist())}
    images = [test.features[where[m["row_id"]]].reshape(tuple(image_shape)) for m in mistakes]
    captions = [
        "\n".join(
            [
                plots.truncate_label(f"{m['label']}→{m['prediction']} p={m['probability']:.2f}", CAPTION_LENGTH),
                plots.truncate_label(f"row {m['row_id']}", CAPTION_LENGTH),
                *([f"ledger: {m['ledger']}"] if m["ledger"] else []),
            ]
        )
        for m in mistakes
    ]
    return plots.image_gallery(images, captions, path, title, highlighted=[bool(m["ledger"]) for m in mistakes])


def analyse(
    folder: Path,
    store: str,
    dataset: str,
    test: Split,
    candidate: np.ndarray,
    class_names: Sequence[str],
    task: str,
    record: Mapping[str, Any],
) -> dict[str, Any]:
    """The report's error-analysis section for the candidate (its experiment `record`); the gallery PNG,
    for image-shaped rows, is written to `folder`. Logs its summary."""
    if task == REGRESSION:
        section: dict[str, Any] = {
            "task": task,
            "k": TOP_MISTAKES,
            "largest_residuals": largest_residuals(test, candidate),
        }
        log.info("error analysis: %s", summary(section))
        return section
    marks = ledger_marks(store, dataset)
    mistakes = most_confident_mistakes(test, candidate, class_names, marks)
    section = {
        "task": task,
        "k": TOP_MISTAKES,
        "wrong_rows": int((np.asarray(candidate).argmax(axis=1) != test.labels).sum()),
        "test_rows": len(test.labels),
        "most_confident": mistakes,
        "confused_pairs": confused_pairs(test.labels, candidate, class_names),
        "ledger_uri": layout.ledger_uri(store, dataset),
        "gallery": None,
    }
    shape = image_shape_of(record["params"])
    if mistakes and shape and math.prod(shape) == test.features.shape[1]:
        draw_gallery(
            test, mistakes, shape, folder / GALLERY_NAME, f"Candidate {record['key'][:8]}: most confident mistakes"
        )
        section["gallery"] = GALLERY_NAME
    log.info("error analysis: %s", summary(section))
    return section


def summary(section: Mapping[str, Any]) -> str:
    """One sentence for the log and the report."""
    if "largest_residuals" in section:
        worst = section["largest_residuals"][:3]
        return "largest residuals (actual - predicted): " + "; ".join(
            f"row {r['row_id']} {r['residual']:+.4g} (actual {r['label']:.4g}, predicted {r['prediction']:.4g})"
            for r in worst
        )
    if not section["most_confident"]:
        return f"no mistakes on the {section['test_rows']} test rows"
    top, pairs = section["most_confident"][0], section["confused_pairs"][:3]
    in_ledger = sum(1 for m in section["most_confident"] if m["ledger"])
    return (
        f"{section['wrong_rows']} of {section['test_rows']} test rows wrong; most confident mistake: row "
        f"{top['row_id']} ({top['label']}→{top['prediction']}, p={top['probability']:.2f}); most confused: "
        + ", ".join(f"{p['label']}→{p['prediction']} ({_rows_text(p['rows'])})" for p in pairs)
        + f"; {in_ledger} of the {len(section['most_confident'])} listed are in the label-error ledger"
    )


def _rows_text(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _rows(section: Mapping[str, Any]) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    """(header, rows) of the mistakes table and of the confused pairs table (empty for regression)."""
    if "largest_residuals" in section:
        header = ["row", "date", "label", "prediction", "residual"]
        rows = [
            [r["row_id"], r["date"], f"{r['label']:.4g}", f"{r['prediction']:.4g}", f"{r['residual']:+.4g}"]
            for r in section["largest_residuals"]
        ]
        return header, rows, [], []
    header = ["row", "date", "label", "prediction", "probability", "ledger"]
    rows = [
        [m["row_id"], m["date"], m["label"], m["prediction"], f"{m['probability']:.4f}", m["ledger"]]
        for m in section["most_confident"]
    ]
    pairs = [[p["label"], p["prediction"], str(p["rows"])] for p in section["confused_pairs"]]
    return header, rows, ["label", "prediction", "rows"], pairs


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _heading(section: Mapping[str, Any]) -> str:
    if "largest_residuals" in section:
        return f"The candidate's {len(section['largest_residuals'])} largest absolute residuals on the test rows:"
    return (
        f"The candidate's {len(section['most_confident'])} most confident mistakes on the test rows "
        "(ledger: the row's status in the label-error ledger):"
    )


def markdown_section(report: Mapping[str, Any]) -> str:
    """## Error analysis: the summary, the tables and the gallery; "" for a report without one."""
    section = report.get("mistakes")
    if not section:
        return ""
    header, rows, pair_header, pairs = _rows(section)
    parts = ["## Error analysis", summary(section), _heading(section), _markdown_table(header, rows)]
    if pairs:
        parts += ["Most confused class pairs:", _markdown_table(pair_header, pairs)]
    if section.get("gallery"):
        parts.append(f"![most confident mistakes]({section['gallery']})")
    return "\n\n".join(parts)


def html_section(report: Mapping[str, Any]) -> str:
    """The same section as HTML; "" for a report without one."""
    section = report.get("mistakes")
    if not section:
        return ""
    header, rows, pair_header, pairs = _rows(section)
    out = f"<h2>Error analysis</h2><p>{html.escape(summary(section))}</p><p>{html.escape(_heading(section))}</p>"
    out += _html_table(header, rows)
    if pairs:
        out += "<p>Most confused class pairs:</p>" + _html_table(pair_header, pairs)
    if section.get("gallery"):
        name = html.escape(section["gallery"])
        out += f'<figure><a href="{name}"><img src="{name}" alt="{name}"></a><figcaption>{name}</figcaption></figure>'
    return out
