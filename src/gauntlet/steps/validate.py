"""validate: run the Great Expectations suite from include/ on the raw partitions of a run.

The snapshot's partitions are validated together in one GX run (fast); if that fails, each
partition is validated on its own, so every failure names its file. The rules that span files (a
row id names one row of the whole snapshot, with one label) are then applied to the snapshot, by
both engines alike (fastchecks.snapshot_failures), and decide the run with the per-file verdicts.
The result (statistics, each failed expectation with sample bad values) goes to S3 as JSON and
the Data Docs site is built locally and uploaded beside it. A failed validation raises
ValidationFailed after writing that evidence, so nothing downstream runs.

The step is over 400 lines because both engines (GX and gauntlet.fastchecks) end in the same
evidence: one result.json, one Data Docs site and one snapshot-level verdict, built here once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from gauntlet import datacheck, drift, fastchecks, layout, quarantine, rawdata, storage
from gauntlet.config import PipelineConfig, resolve
from gauntlet.errors import BadInput, NoNewData, RawDataError, ValidationFailed
from gauntlet.hashing import content_hash
from gauntlet.logs import get_logger

log = get_logger("gauntlet.validate")
MAX_EXAMPLES = 5


def load_suite(config: PipelineConfig) -> dict[str, Any]:
    suite: dict[str, Any] = json.loads(resolve(config.dataset.expectation_suite).read_text())
    return suite


def _failed_expectations(validation: Any) -> list[dict[str, Any]]:
    failed = []
    for result in validation.results:
        if result.success:
            continue
        cfg = result.expectation_config
        details = result.result or {}
        examples = details.get("partial_unexpected_list") or []
        failed.append(
            {
                "expectation": cfg.type,
                "column": cfg.kwargs.get("column"),
                "kwargs": {k: v for k, v in cfg.kwargs.items() if k not in ("column", "batch_id")},
                "unexpected_count": details.get("unexpected_count"),
                "observed_value": details.get("observed_value"),
                "examples": [None if v != v else v for v in examples[:MAX_EXAMPLES]],  # NaN -> null
                "error": (result.exception_info or {}).get("exception_message"),
                "mismatched": (details.get("details") or {}).get("mismatched"),
                "rows": details.get("unexpected_index_list"),  # for row-level quarantine
            }
        )
    return failed


def describe_failure(item: dict[str, Any]) -> str:
    where = f"column '{item['column']}'" if item["column"] else "table"
    what = item["expectation"]
    if item.get("mismatched"):
        return f"{what} on {where}: " + "; ".join(
            f"{kind} columns {sorted(map(str, names))}" for kind, names in sorted(item["mismatched"].items()) if names
        )
    if item["error"]:
        return f"{what} on {where}: {item['error'][:200]}"
    if item["unexpected_count"]:
        return f"{what} on {where}: {item['unexpected_count']} bad values, e.g. {item['examples']}"
    if item["observed_value"] is not None:
        return f"{what} on {where}: observed {item['observed_value']!r}"
    return f"{what} on {where}"


class _Validator:
    """One GX file context in a temp dir: GX 1.x has no S3 store, so Data Docs are built here."""

    def __init__(self, suite_spec: dict[str, Any], root: Path) -> None:
        os.environ.setdefault("TQDM_DISABLE", "1")  # GX's progress bars flood task logs
        warnings.filterwarnings("ignore", module="great_expectations")
        import great_expectations as gx
        from great_expectations.core import ExpectationSuite
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.context = gx.get_context(mode="file", project_root_dir=str(root))
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        suite = self.context.suites.add(
            ExpectationSuite(
                name=suite_spec["name"], expectations=suite_spec["expectations"], meta=suite_spec.get("meta")
            )
        )
        asset = self.context.data_sources.add_pandas("raw").add_dataframe_asset("partition")
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(
                name="raw_partition", data=asset.add_batch_definition_whole_dataframe("whole"), suite=suite
            )
        )
        self.checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(
                name="raw",
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="docs")],
                # COMPLETE: row-level quarantine needs every offending row's index, not a sample.
                result_format={"result_format": "COMPLETE", "partial_unexpected_count": MAX_EXAMPLES},
            )
        )
        self.docs_dir = root / "gx" / "uncommitted" / "data_docs" / "local_site"

    def validate(self, frame: Any) -> tuple[bool, dict[str, Any], list[dict[str, Any]]]:
        result = self.checkpoint.run(batch_parameters={"dataframe": _gx_frame(frame)}, run_id=None)
        validation = next(iter(result.run_results.values()))
        return bool(result.success), dict(validation.statistics), _failed_expectations(validation)


def _gx_frame(frame: Any) -> Any:
    """The frame as GX should see it: rows indexed 0..n-1 (GX names failing rows by index label,
    and quarantine records positions) and text columns as object dtype (GX checks a type list value
    by value on object columns only; pandas' own `str` dtype matches no type name)."""
    import pandas as pd

    text = {c: object for c, d in frame.dtypes.items() if isinstance(d, pd.StringDtype)}
    return frame.reset_index(drop=True).astype(text) if text else frame.reset_index(drop=True)


def _keys(uri: str, frame: Any, config: PipelineConfig) -> fastchecks.Keys:
    """A frame's ids and labels for the snapshot's rules (none when a column is missing)."""
    import pyarrow as pa

    ds, keys = config.dataset, fastchecks.Keys(uri)
    for column, chunks in ((ds.id_column, keys.ids), (ds.label_column, keys.labels)):
        if column in frame.columns:
            # Mixed types cannot become one array: the suite's type rule reports those.
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError):
                chunks.append(pa.array(frame[column]))
    return keys


def _validate_vectorised(
    config: PipelineConfig,
    suite_spec: dict[str, Any],
    snapshot: list[rawdata.Partition],
    new: list[rawdata.Partition],
    store: str,
    run_id: str,
    watch: drift.Watch,
) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """The suite's rules on every row with gauntlet.fastchecks, streamed one Arrow batch at a time.

    Returns (reports, engine facts) when the whole snapshot passes, else None: a failure,
    an unreadable file or a rule the engine does not implement leaves the verdict to GX.
    """
    import numpy as np
    import pyarrow as pa

    skipped = fastchecks.unsupported(suite_spec)
    if skipped:
        log.info("the vectorised engine does not implement %s: using GX", sorted(set(skipped)))
        return None
    tick = time.perf_counter()
    checker = fastchecks.SuiteChecker(suite_spec, config.dataset.id_column, config.dataset.label_column)
    sample_rows = config.dataset.validation_sample_rows
    rng = np.random.default_rng(0)
    # A uniform sample in bounded memory: every row draws a random key, the smallest keys are kept.
    pool: pa.Table | None = None
    for partition in snapshot:
        checker.start_partition(partition.uri)
        watch.start_partition(partition in new)
        try:
            data = storage.get_bytes(partition.uri)
            for batch in rawdata.iter_batches(partition.uri, data, id_column=config.dataset.id_column):
                checker.add(batch)
                watch.add_batch(batch, partition in new)
                if sample_rows:
                    table = pa.Table.from_batches([batch]).append_column("__key", pa.array(rng.random(batch.num_rows)))
                    pool = table if pool is None else pa.concat_tables([pool, table], promote_options="default")
                    pool = pool.take(np.argsort(pool["__key"].to_numpy())[:sample_rows])
        except RawDataError as error:
            log.error("%s", error)
            return None
    passed, problems = checker.verdict()
    log.info(
        "vectorised checks: %d expectations on %d rows in %d partitions: %s (%.1fs)",
        len(suite_spec["expectations"]),
        checker.rows,
        len(snapshot),
        "passed" if passed else f"{len(problems)} not passed",
        time.perf_counter() - tick,
    )
    for problem in problems[:10]:
        log.warning("  %s", problem)
    if not passed:
        return None
    engine: dict[str, Any] = {
        "engine": "vectorised",
        "expectations": len(suite_spec["expectations"]),
        "gx_sample_rows": 0,
    }
    if pool is not None and pool.num_rows:
        with tempfile.TemporaryDirectory(prefix="gauntlet-gx-") as tmp:
            validator = _Validator(suite_spec, Path(tmp))
            ok, _, failed = validator.validate(pool.drop_columns(["__key"]).to_pandas())
            if not ok:
                log.warning("GX failed %d expectations on the sample that the vectorised checks passed", len(failed))
                return None
            _publish_data_docs(validator.docs_dir, store, run_id)
        engine["gx_sample_rows"] = pool.num_rows
    else:
        # Data Docs come from GX; without a GX sample, the docs link says what checked the data instead.
        storage.put_bytes(
            layout.data_docs_uri(store, run_id),
            (
                f"<html><body><h1>Suite {suite_spec['name']}: passed</h1><p>{len(suite_spec['expectations'])} "
                f"expectations evaluated on all {checker.rows} rows of {len(snapshot)} partitions by the vectorised "
                "engine (gauntlet.fastchecks). GX Data Docs are built when a rule fails, or on a sample with "
                "dataset.validation_sample_rows.</p></body></html>"
            ).encode(),
            content_type="text/html",
        )
    reports = [
        {**p.as_dict(), "new": p in new, "rows": part["rows"], "success": True, "failed": []}
        for p, part in zip(snapshot, checker.partitions, strict=True)
    ]
    reports.sort(key=lambda r: (r["date"], r["uri"]))
    return reports, engine


def _publish_data_docs(docs_dir: Path, store: str, run_id: str) -> None:
    for path in sorted(p for p in docs_dir.rglob("*") if p.is_file()):
        kind = "text/html" if path.suffix == ".html" else "application/octet-stream"
        storage.upload_file(path, layout.data_docs_uri(store, run_id, path.relative_to(docs_dir).as_posix()), kind)


def _same_columns(frames: list[Any]) -> bool:
    """Partitions with differing columns cannot be concatenated meaningfully: validate them apart."""
    first = list(frames[0].columns)
    return all(list(f.columns) == first and all(f.dtypes == frames[0].dtypes) for f in frames)


def run(
    config: PipelineConfig,
    store: str,
    start: dt.date,
    end: dt.date,
    run_id: str,
    require_new: bool = False,
) -> dict[str, Any]:
    """Validate the snapshot of raw partitions dated before `end`.

    With require_new, a run whose interval holds no partition ends before any work (NoNewData):
    a scheduled night without new data must not retrain on yesterday's snapshot. A snapshot with
    no partition at all is bad input (BadInput, naming the prefix listed), never a skip.

    Returns the locations of the result and Data Docs, the partitions that were validated (with
    their ETags, so preprocess reads exactly these bytes) and how many are new in [start, end).
    """
    started = time.perf_counter()
    suite_spec = load_suite(config)
    all_partitions = rawdata.list_partitions(store, config.dataset.raw_prefix)
    snapshot = rawdata.select(all_partitions, None, end)
    new = rawdata.select(all_partitions, start, end)
    log.info(
        "validating %d partitions (%d new in [%s, %s)) with suite '%s' (%d expectations)",
        len(snapshot),
        len(new),
        start,
        end,
        suite_spec["name"],
        len(suite_spec["expectations"]),
    )
    if not snapshot:
        # Not a skip: a mistyped prefix would otherwise look like a quiet night, every night.
        raise BadInput(
            f"no raw partitions under {layout.raw_root(store, config.dataset.raw_prefix)}/ dated before {end} "
            "(looked for date=YYYY-MM-DD/part-*.parquet or .csv): check dataset.raw_prefix"
        )
    if require_new and not new:
        raise NoNewData(
            f"no new data: no partition landed under {layout.raw_root(store, config.dataset.raw_prefix)} "
            f"in [{start}, {end}); the snapshot of {len(snapshot)} partitions was already trained on"
        )

    datacheck.check(config, snapshot, suite_spec)  # config vs data (columns, labels): names key, column, file
    watch = _drift_watch(config, suite_spec, snapshot, new)
    if config.dataset.validation == "vectorised":
        fast = _validate_vectorised(config, suite_spec, snapshot, new, store, run_id, watch)
        if fast is not None:
            passed, engine = fast
            return _finish(passed, suite_spec, start, end, new, store, run_id, started, engine, [], watch)
        log.info("the vectorised checks did not pass the snapshot: running the GX suite for the evidence")
        watch = _drift_watch(config, suite_spec, snapshot, new)  # the GX pass samples afresh

    reports: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gauntlet-gx-") as tmp:
        validator = _Validator(suite_spec, Path(tmp))
        frames: list[tuple[rawdata.Partition, Any]] = []
        for partition in snapshot:
            entry: dict[str, Any] = {**partition.as_dict(), "new": partition in new}
            try:
                frames.append((partition, rawdata.read_partition(partition.uri, config.dataset.id_column)))
                watch.start_partition(partition in new)
                watch.add_frame(frames[-1][1], partition in new)
            except RawDataError as error:
                log.error("%s", error)
                entry.update(
                    success=False,
                    rows=0,
                    failed=[
                        {
                            "expectation": "readable_file",
                            "column": None,
                            "kwargs": {},
                            "unexpected_count": None,
                            "observed_value": None,
                            "examples": [],
                            "error": str(error),
                        }
                    ],
                )
                reports.append(entry)
        together_ok = False
        # Table-level rules (row count) hold per file: an empty file must not hide in the others' rows.
        if frames and not reports and all(len(f) for _, f in frames) and _same_columns([f for _, f in frames]):
            import pandas as pd

            together_ok, stats, _ = validator.validate(pd.concat([f for _, f in frames], ignore_index=True))
            if together_ok:
                log.info(
                    "all %d partitions passed together: %d expectations evaluated",
                    len(frames),
                    stats.get("evaluated_expectations", 0),
                )
        for partition, frame in frames:
            entry = {**partition.as_dict(), "new": partition in new, "rows": len(frame)}
            if together_ok:
                entry.update(success=True, failed=[])
            else:
                success, stats, failed = validator.validate(frame)
                held = (
                    None
                    if success
                    else quarantine.apply(
                        store,
                        config.dataset.name,
                        suite_spec,
                        content_hash(suite_spec),
                        config.dataset.quarantine_max_fraction,
                        partition.as_dict(),
                        _gx_frame(frame),
                        failed,
                        config.dataset.id_column,
                    )
                )
                if held is not None:
                    success, failed = True, []
                    entry.update(quarantine=held)
                entry.update(success=success, statistics=stats, failed=failed)
                verdict = "passed" if success else f"FAILED {len(failed)} expectations"
                log.info("  %s: %d rows, %s", partition.uri, len(frame), verdict)
                for item in failed:
                    log.error("    %s", describe_failure(item))
            reports.append(entry)
        reports.sort(key=lambda r: (r["date"], r["uri"]))
        across = fastchecks.snapshot_failures(
            [_keys(p.uri, f, config) for p, f in frames], config.dataset.id_column, config.dataset.label_column
        )
        for item in across:
            log.error("  snapshot: %s on column '%s': %s", item["expectation"], item["column"], item["error"])
        if validator.docs_dir.exists():
            _publish_data_docs(validator.docs_dir, store, run_id)

    return _finish(reports, suite_spec, start, end, new, store, run_id, started, {"engine": "gx"}, across, watch)


def _drift_watch(
    config: PipelineConfig, suite_spec: dict[str, Any], snapshot: list[rawdata.Partition], new: list[rawdata.Partition]
) -> drift.Watch:
    """The drift sampler the engine feeds while it reads: the new partitions against the earlier ones."""
    return drift.Watch.for_run(config, suite_spec, earlier=len(snapshot) - len(new), new=len(new))


def _finish(
    reports: list[dict[str, Any]],
    suite_spec: dict[str, Any],
    start: dt.date,
    end: dt.date,
    new: list[rawdata.Partition],
    store: str,
    run_id: str,
    started: float,
    engine: dict[str, Any],
    across: list[dict[str, Any]],
    watch: drift.Watch,
) -> dict[str, Any]:
    """Write result.json and return the outputs (raising ValidationFailed after writing it).

    `across` holds the failures of the snapshot's rules (fastchecks.snapshot_failures); the drift of
    the new partitions is measured on data that passed them, and fails the run past meta.drift.fail_psi.
    """
    success = all(r["success"] for r in reports) and not across
    drifted = watch.check(store, run_id) if success else drift.not_measured("the validation failed")
    success = success and not drifted["failed"]
    result = {
        "verdict": "passed" if success else "failed",
        "suite": suite_spec["name"],
        "suite_id": content_hash(suite_spec),
        "interval": {"start": start.isoformat(), "end": end.isoformat()},
        "partitions": reports,
        "snapshot": {"success": not across, "failed": across},
        "new_partitions": len(new),
        "rows": sum(r["rows"] for r in reports),
        "quarantined_rows": sum(r.get("quarantine", {}).get("count", 0) for r in reports),
        "seconds": round(time.perf_counter() - started, 3),
        "engine": engine,
        "drift": drifted,
    }
    result_uri = layout.validation_result_uri(store, run_id)
    storage.put_json(result_uri, result)
    outputs = {
        "verdict": result["verdict"],
        "result_uri": result_uri,
        "docs_uri": layout.data_docs_uri(store, run_id),
        "rows": result["rows"],
        "partitions": len(reports),
        "new_partitions": len(new),
        "quarantined_rows": result["quarantined_rows"],
        "quarantine_uris": [r["quarantine"]["uri"] for r in reports if "quarantine" in r],
        "drift": drifted["line"],
        "drift_uri": drifted.get("uri"),
    }
    if not success:
        # An unreadable file's error already starts with its URI.
        problems = [
            f["error"] if f["expectation"] == "readable_file" else f"{r['uri']}: {describe_failure(f)}"
            for r in reports
            for f in r["failed"]
        ]
        # The whole sentence: it names the files an id was landed in.
        problems += [f"snapshot: {f['expectation']} on column '{f['column']}': {f['error']}" for f in across]
        problems += [drift.failure_message(drifted, watch.settings.suite)] if drifted["failed"] else []
        raise ValidationFailed("validation failed:\n  " + "\n  ".join(problems) + f"\nfull result: {result_uri}")
    log.info("validation passed: %d rows in %d partitions; result %s", result["rows"], len(reports), result_uri)
    return outputs
