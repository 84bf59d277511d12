"""The evaluation report in S3: real PNGs, an HTML page linking them, per-slice tables, protocol id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pipeline_support import MLP, evaluate, png_pixels, shared_dataset, train

from gauntlet import storage
from gauntlet.protocol import load_protocol

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
PLOTS = ("confusion_matrix.png", "learning_curves.png", "reliability.png")


def test_report_pngs_are_real_images_linked_from_the_html(s3_endpoint: str) -> None:
    store, dataset = shared_dataset(s3_endpoint)
    options = [*MLP, "--set", "training.epochs=1", "--set", "model.name=report-digits"]
    _, trained = train(store, dataset, *options)
    _, evaluated = evaluate(store, trained["experiment_uri"], *options)
    prefix = evaluated["report_uri"].rsplit("/", 1)[0]
    manifest = storage.read_manifest(prefix)
    report = storage.get_json(evaluated["report_uri"])
    assert report["plots"] == list(PLOTS)

    page = storage.get_bytes(evaluated["report_html_uri"]).decode()
    for name in PLOTS:
        data = storage.read_committed_file(prefix, name)  # sha256-checked against the manifest
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(data) > 10_000 and manifest["files"][name]["size"] == len(data)
        pixels = png_pixels(data)
        assert pixels.shape[:2] == (500, 600)  # the 6 x 5 inch figure at 100 dpi
        colours = np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)
        assert len(colours) > 20, f"{name} is nearly one colour"
        assert f'src="{name}"' in page and f'href="{name}"' in page

    protocol = load_protocol(ROOT / "include/protocols/digits-v1.yaml")
    assert report["protocol_id"] == protocol.id and protocol.id in page
    # Per-slice tables: one slice per raw partition day, covering every test row.
    slices = report["slices"]["date"]
    assert sorted(slices) == [f"2026-11-0{d}" for d in range(1, 8)]
    assert sum(s["rows"] for s in slices.values()) == report["test_rows"]
    for group in slices.values():
        assert set(group["metrics"]) == {"candidate", "baseline"}
        assert 0 <= group["metrics"]["candidate"]["error_rate"] <= 1
    assert "date=2026-11-01 candidate" in page and "date=2026-11-07 baseline" in page
