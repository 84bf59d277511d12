"""PNG figures for run reports: learning curves, confusion matrices, reliability diagrams, and for
regression the residuals and predicted-vs-actual scatter.

Each function writes one PNG to a local path and returns that path; uploading is the caller's job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

# Headless: workers and Airflow tasks have no display.
matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from gauntlet.scoring.metrics import ECE_BINS, calibration_bins

FIGSIZE = (6.0, 5.0)
DPI = 100
MAX_LABEL_LENGTH = 40
# Log axes cannot show zero: a perfect dev error or step 0 is drawn at these floors instead.
ERROR_FLOOR = 1e-4
STEP_FLOOR = 1.0
# Beyond this many classes, per-cell numbers are unreadable.
MAX_ANNOTATED_CLASSES = 30
MAX_TICK_LABEL_LENGTH = 16


def truncate_label(label: str, max_length: int = MAX_LABEL_LENGTH) -> str:
    """Shorten a legend label, keeping its start and marking the cut with an ellipsis."""
    if len(label) <= max_length:
        return label
    return label[: max_length - 1] + "…"


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.tight_layout()
        fig.savefig(out, dpi=DPI, format="png")
    finally:
        plt.close(fig)
    return out


def learning_curves(
    curves: Mapping[str, Sequence[tuple[float, float]]], path: str | Path, title: str, ylabel: str = "dev error"
) -> Path:
    """Dev error (or `ylabel`'s quantity) against training step for each experiment, on log-log axes."""
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    cmap = plt.get_cmap("tab10")
    styles = ["-", "--", ":", "-."]
    plotted = 0
    for label, points in curves.items():
        pts = np.asarray(list(points), dtype=np.float64).reshape(-1, 2)
        # Diverged runs log NaN/inf; drop those points rather than the whole curve.
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        if pts.shape[0] == 0:
            continue
        pts = pts[np.argsort(pts[:, 0], kind="mergesort")]
        steps = np.maximum(pts[:, 0], STEP_FLOOR)
        errors = np.maximum(pts[:, 1], ERROR_FLOOR)
        ax.plot(
            steps,
            errors,
            color=cmap(plotted % 10),
            linestyle=styles[(plotted // 10) % len(styles)],
            marker="o",
            markersize=3,
            linewidth=1.5,
            label=truncate_label(str(label)),
        )
        plotted += 1
    if plotted:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize="small" if plotted <= 8 else "x-small", loc="best")
    else:
        ax.text(0.5, 0.5, "no learning-curve points", ha="center", va="center")
    ax.grid(True, which="major", alpha=0.5)
    ax.grid(True, which="minor", alpha=0.15)
    ax.set_xlabel("training step (samples seen)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _save(fig, path)


def confusion_matrix(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    n_classes: int,
    path: str | Path,
    title: str,
    class_names: Sequence[str] = (),
) -> Path:
    """Counts of true class (rows) against predicted class (columns), annotated; the ticks show
    `class_names` (one per class index) when given, else the indices."""
    return _save(confusion_figure(y_true, y_pred, n_classes, title, class_names), path)


def confusion_figure(
    y_true: ArrayLike, y_pred: ArrayLike, n_classes: int, title: str, class_names: Sequence[str] = ()
) -> Figure:
    """The confusion matrix's figure, unsaved (the caller saves or closes it)."""
    true = np.asarray(y_true, dtype=np.int64).ravel()
    pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if true.shape != pred.shape:
        raise ValueError(f"y_true {true.shape} and y_pred {pred.shape} differ in length")
    if n_classes < 1:
        raise ValueError("n_classes must be >= 1")
    if class_names and len(class_names) != n_classes:
        raise ValueError(f"{len(class_names)} class names for {n_classes} classes")
    for name, values in (("y_true", true), ("y_pred", pred)):
        if values.size and (values.min() < 0 or values.max() >= n_classes):
            raise ValueError(f"{name} labels must be in [0, {n_classes - 1}]")
    counts = np.bincount(true * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)

    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    image = ax.imshow(counts, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="rows")
    if n_classes <= MAX_ANNOTATED_CLASSES:
        # White text on dark cells, black on light ones, so every count stays legible.
        threshold = counts.max() / 2.0 if counts.max() else math.inf
        fontsize = 9 if n_classes <= 12 else 6
        for i in range(n_classes):
            for j in range(n_classes):
                ax.text(
                    j,
                    i,
                    str(counts[i, j]),
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color="white" if counts[i, j] > threshold else "black",
                )
    ticks = np.arange(n_classes)
    if n_classes <= MAX_ANNOTATED_CLASSES:
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        if class_names:
            labels = [truncate_label(str(name), MAX_TICK_LABEL_LENGTH) for name in class_names]
            rotate = max(map(len, labels)) > 2  # longer names would overlap side by side
            ax.set_xticklabels(labels, rotation=45 if rotate else 0, ha="right" if rotate else "center")
            ax.set_yticklabels(labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = float(np.trace(counts) / counts.sum()) if counts.sum() else math.nan
    ax.set_title(f"{title}\naccuracy {accuracy:.3f} on {int(counts.sum())} rows")
    return fig


def reliability_diagram(
    y_true: ArrayLike,
    proba: ArrayLike,
    path: str | Path,
    title: str,
    n_bins: int = ECE_BINS,
) -> Path:
    """Accuracy against top-class confidence per bin, with the bin counts underneath."""
    bins = calibration_bins(y_true, proba, n_bins)
    edges = bins.edges
    width = edges[1] - edges[0]
    centers = edges[:-1] + width / 2
    filled = bins.counts > 0

    fig, (ax, ax_counts) = plt.subplots(
        2,
        1,
        figsize=FIGSIZE,
        dpi=DPI,
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1]},
    )
    ax.bar(
        centers[filled],
        bins.accuracy[filled],
        width=width * 0.95,
        color="tab:blue",
        edgecolor="black",
        linewidth=0.5,
        label="accuracy",
    )
    # The gap between a bar and the diagonal is what ECE averages.
    ax.bar(
        centers[filled],
        bins.confidence[filled] - bins.accuracy[filled],
        bottom=bins.accuracy[filled],
        width=width * 0.95,
        # Hatched, not filled, so the gap stays readable where it overlaps an accuracy bar.
        facecolor="none",
        edgecolor="tab:red",
        hatch="///",
        linewidth=0.8,
        label="gap to mean confidence",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(f"{title}\nECE ({n_bins} bins) = {bins.ece:.4f}")

    ax_counts.bar(centers, bins.counts, width=width * 0.95, color="gray", edgecolor="black")
    ax_counts.set_xlabel("confidence (top-class probability)")
    ax_counts.set_ylabel("rows")
    ax_counts.grid(True, alpha=0.3)
    return _save(fig, path)


def _regression_columns(y_true: ArrayLike, predicted: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    actual = np.asarray(y_true, dtype=np.float64).ravel()
    values = np.asarray(predicted, dtype=np.float64).ravel()  # (rows, 1) or (rows,)
    if actual.shape != values.shape:
        raise ValueError(f"y_true {actual.shape} and predictions {values.shape} differ in length")
    if actual.size == 0:
        raise ValueError("no rows to plot")
    return actual, values


def residual_plot(y_true: ArrayLike, predicted: ArrayLike, path: str | Path, title: str) -> Path:
    """Residual (actual - predicted) against predicted value, with the zero line: a trend or a funnel
    shows where the model is biased or unsure."""
    actual, values = _regression_columns(y_true, predicted)
    residual = actual - values
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    ax.scatter(values, residual, s=10, alpha=0.6, color="tab:blue", edgecolors="none")
    ax.axhline(0.0, color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel("predicted value")
    ax.set_ylabel("residual (actual - predicted)")
    ax.grid(True, alpha=0.3)
    rmse = float(np.sqrt(np.mean(residual**2)))
    ax.set_title(f"{title}\nRMSE {rmse:.4g}, mean residual {float(residual.mean()):+.4g} on {actual.size} rows")
    return _save(fig, path)


def predicted_vs_actual(y_true: ArrayLike, predicted: ArrayLike, path: str | Path, title: str) -> Path:
    """Predicted against actual value with the diagonal a perfect model would lie on."""
    actual, values = _regression_columns(y_true, predicted)
    low = float(min(actual.min(), values.min()))
    high = float(max(actual.max(), values.max()))
    pad = (high - low) * 0.05 or 1.0
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    ax.scatter(actual, values, s=10, alpha=0.6, color="tab:blue", edgecolors="none")
    ax.plot([low - pad, high + pad], [low - pad, high + pad], linestyle="--", color="gray", label="predicted = actual")
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("actual value")
    ax.set_ylabel("predicted value")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(f"{title}\n{actual.size} rows")
    return _save(fig, path)


def image_gallery(
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    path: str | Path,
    title: str,
    highlighted: Sequence[bool] = (),
    columns: int = 4,
) -> Path:
    """Small images (2-D arrays, dark ink on white) in a grid, each with its caption; highlighted
    captions are red."""
    if not images or len(captions) != len(images):
        raise ValueError(f"{len(images)} images and {len(captions)} captions: need one caption per image, at least one")
    cols = min(columns, len(images))
    rows = math.ceil(len(images) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.5 * rows + 0.6), dpi=DPI, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    marked = list(highlighted) or [False] * len(images)
    for ax, image, caption, red in zip(axes.ravel(), images, captions, marked, strict=False):
        ax.imshow(np.nan_to_num(np.asarray(image, dtype=np.float64)), cmap="gray_r", interpolation="nearest")
        ax.set_title(caption, fontsize=8, color="tab:red" if red else "black")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def bias_variance(
    errors: Mapping[str, float], path: str | Path, title: str, ylabel: str, reference: float | None = None
) -> Path:
    """One bar per error (training, dev, test, the baseline's test...), each labelled with its value, and
    the reference level (human-level or a known best) as a dashed line when there is one: the gaps
    between neighbouring bars are what a bias/variance diagnosis reads."""
    names = list(errors)
    values = np.asarray([errors[n] for n in names], dtype=np.float64)
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    colours = [plt.get_cmap("tab10")(i % 10) for i in range(len(names))]
    shown = np.where(np.isfinite(values), values, 0.0)
    bars = ax.bar(range(len(names)), shown, color=colours, edgecolor="black", linewidth=0.5)
    for bar, value in zip(bars, values, strict=True):
        text = f"{value:.4g}" if math.isfinite(value) else "n/a"
        ax.annotate(
            text,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            xytext=(0, 3),
            textcoords="offset points",
        )
    if reference is not None and math.isfinite(reference):
        ax.axhline(reference, color="gray", linestyle="--", linewidth=1.2, label=f"reference level {reference:.4g}")
        ax.legend(loc="upper left", fontsize="small")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([truncate_label(n, MAX_TICK_LABEL_LENGTH) for n in names])
    top = max([*shown.tolist(), reference or 0.0, 0.0])
    ax.set_ylim(0, top * 1.2 if top > 0 else 1.0)  # room for the value labels above the bars
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(title)
    return _save(fig, path)
