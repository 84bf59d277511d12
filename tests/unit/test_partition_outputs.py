"""gauntlet.partition_outputs: partition outputs committed once, found through the lineage's index or
one by one, and referenced (never copied) by a dataset's manifest."""

from __future__ import annotations

from pathlib import Path

from gauntlet import layout, partition_outputs, storage


def _processed(tmp_path: Path, key: str) -> tuple[dict, Path]:
    folder = tmp_path / key
    folder.mkdir()
    for name in ("train.parquet", "test.parquet"):
        (folder / name).write_bytes(f"{key}:{name}".encode())
    return {"key": key, "rows": 2}, folder


def test_outputs_are_found_by_the_index_or_one_by_one_and_referenced_in_partition_order(
    store: str, tmp_path: Path
) -> None:
    committed = partition_outputs.commit(store, "clinic", [_processed(tmp_path, k) for k in ("k1", "k2")])
    assert set(committed) == {"k1", "k2"} and committed["k1"]["rows"] == 2
    # Before any index: each key is looked up by its own manifest; an unknown key is not found.
    assert set(partition_outputs.committed(store, "clinic", "line", ["k1", "k2", "k3"])) == {"k1", "k2"}
    partition_outputs.remember(store, "clinic", "line", "s3://b/datasets/clinic/v", [committed["k1"]])
    index = storage.get_json(layout.partition_index_uri(store, "clinic", "line"))
    assert index["dataset"] == "s3://b/datasets/clinic/v" and list(index["outputs"]) == ["k1"]
    assert set(partition_outputs.committed(store, "clinic", "line", ["k1", "k2"])) == {"k1", "k2"}

    files = partition_outputs.referenced_files(store, "clinic", [committed["k2"], committed["k1"]])
    assert sorted(files) == [
        "test/part-00000.parquet",
        "test/part-00001.parquet",
        "train/part-00000.parquet",
        "train/part-00001.parquet",
    ]
    first = files["train/part-00000.parquet"]
    assert first["uri"] == layout.partition_output_file(store, "clinic", "k2", "train.parquet")
    assert storage.get_bytes(first["uri"]) == b"k2:train.parquet" and first["size"] == len(b"k2:train.parquet")
