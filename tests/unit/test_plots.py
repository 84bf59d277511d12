"""Tests for gauntlet.plots: each figure is a real, non-blank PNG of the expected size."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import matplotlib.image as mpimg
import numpy as np
import pytest

from gauntlet import plots


def assert_real_png(path: Path) -> None:
    assert path.exists()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
    image = mpimg.imread(path)
    height, width = image.shape[:2]
    assert width > 400 and height > 300
    pixels = image[..., :3].reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 10  # not a blank canvas


def test_backend_is_headless() -> None:
    assert matplotlib.get_backend().lower() == "agg"


def test_learning_curves(tmp_path: Path) -> None:
    long_label = "lr=0.1 batch=128 optimiser=adamw warmup=500 weight_decay=0.01 seed=7"
    curves = {
        "baseline": [(64.0 * s, 0.9 / (1 + s) ** 0.5) for s in range(1, 40)],
        long_label: [(64.0 * s, 0.8 / (1 + s) ** 0.7) for s in range(40)],
        # Zeros, a negative and a NaN must neither crash nor distort the log axes.
        "perfect": [(0.0, 0.5), (100.0, 0.0), (200.0, -1.0), (300.0, float("nan"))],
        "empty": [],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = plots.learning_curves(curves, tmp_path / "nested" / "curves.png", "digits")
    assert out == tmp_path / "nested" / "curves.png"
    assert_real_png(out)


def test_learning_curves_without_points(tmp_path: Path) -> None:
    out = plots.learning_curves({}, tmp_path / "none.png", "nothing yet")
    assert out.exists() and out.stat().st_size > 0


def test_truncate_label() -> None:
    assert plots.truncate_label("short") == "short"
    cut = plots.truncate_label("x" * 100)
    assert len(cut) == plots.MAX_LABEL_LENGTH and cut.endswith("…")


def test_confusion_matrix(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 10, 500)
    y_pred = np.where(rng.random(500) < 0.8, y_true, rng.integers(0, 10, 500))
    out = plots.confusion_matrix(y_true, y_pred, 10, tmp_path / "cm.png", "confusion")
    assert_real_png(out)
    with pytest.raises(ValueError, match="y_pred"):
        plots.confusion_matrix(y_true, y_pred + 1, 10, tmp_path / "bad.png", "bad")


def test_reliability_diagram(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(10) * 0.3, 800)
    y = np.where(rng.random(800) < 0.7, proba.argmax(1), rng.integers(0, 10, 800))
    out = plots.reliability_diagram(y, proba, tmp_path / "rel.png", "calibration")
    assert_real_png(out)


def test_figures_are_closed(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 50)
    proba = rng.dirichlet(np.ones(3), 50)
    plots.learning_curves({"a": [(1.0, 0.5), (10.0, 0.2)]}, tmp_path / "a.png", "a")
    plots.confusion_matrix(y, proba.argmax(1), 3, tmp_path / "b.png", "b")
    plots.reliability_diagram(y, proba, tmp_path / "c.png", "c", n_bins=10)
    assert len(plt.get_fignums()) == before


def test_confusion_matrix_ticks_show_class_names(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    y = np.array([0, 1, 2, 2, 1])
    names = ["class_0", "a very long class name indeed", "west"]
    fig = plots.confusion_figure(y, y, 3, "named", names)
    try:
        ax = fig.axes[0]
        shown = [t.get_text() for t in ax.get_xticklabels()]
        assert shown == ["class_0", plots.truncate_label(names[1], plots.MAX_TICK_LABEL_LENGTH), "west"]
        assert [t.get_text() for t in ax.get_yticklabels()] == shown
    finally:
        plt.close(fig)
    assert_real_png(plots.confusion_matrix(y, y, 3, tmp_path / "named.png", "named", names))
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        plots.confusion_matrix(y, y, 3, tmp_path / "bad.png", "bad", names[:2])


def test_regression_figures(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    actual = rng.normal(150.0, 70.0, 400)
    predicted = (actual * 0.8 + 30 + rng.normal(0, 40, 400))[:, None]  # (rows, 1), as models give them
    assert_real_png(plots.residual_plot(actual, predicted, tmp_path / "residuals.png", "residuals"))
    assert_real_png(plots.predicted_vs_actual(actual, predicted, tmp_path / "pva.png", "predicted vs actual"))
    with pytest.raises(ValueError, match="differ in length"):
        plots.residual_plot(actual, predicted[:-1], tmp_path / "bad.png", "bad")
    # A constant prediction still draws (the axes get a span of their own).
    assert plots.predicted_vs_actual([5.0, 5.0], [[5.0], [5.0]], tmp_path / "flat.png", "flat").exists()
