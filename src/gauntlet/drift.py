"""Drift of new data: the night's new partitions against the earlier partitions of its snapshot.

Validate feeds a `Watch` each batch it reads anyway (no second download), and the watch keeps a
bounded uniform sample of the reference rows (partitions dated before the run's interval) and of the
new rows (partitions in it). Each feature, and the label, is then compared by its population
stability index:

    PSI = sum over bins of (new share - reference share) * ln(new share / reference share)

Numeric columns are binned at the reference's quantiles, categorical ones per value (the most
frequent reference values, the rest in one bin); nulls have a bin of their own and an empty bin
counts as a tiny share, so a value never seen before still scores. The suite's `meta.drift` sets
the levels: a PSI at or above `warn_psi` is logged and reported, at or above `fail_psi` it fails the
validation. The table (drift.json) and a PNG of the most drifted columns go beside the result.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gauntlet import layout, storage
from gauntlet.errors import BadInput
from gauntlet.logs import get_logger

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from gauntlet.config import PipelineConfig

log = get_logger("gauntlet.drift")

# An empty bin's share: finite, so a bin only one side fills adds a large but finite term.
EPSILON = 1e-4
# Categorical columns: this many of the reference's most frequent values keep their own bin.
MAX_CATEGORIES = 20
OTHER, NULL = "<other>", "<null>"
# The PNG: PSI bars for this many columns, bin-by-bin panels for the most drifted few.
PLOT_COLUMNS, PLOT_PANELS = 15, 4
_KNOWN_KEYS = ("warn_psi", "fail_psi", "bins", "sample_rows", "min_rows")


@dataclass(frozen=True)
class Settings:
    """The suite's `meta.drift`, with its defaults: warn at PSI 0.2, never fail."""

    warn_psi: float = 0.2
    fail_psi: float | None = None
    bins: int = 10  # numeric columns: reference-quantile bins
    sample_rows: int = 20_000  # rows sampled from each side (reference, new)
    suite: str = ""  # the suite's file, for messages
    # Fewer rows on either side and nothing is judged: a PSI's own sampling noise grows as bins / rows
    # (a few dozen rows of unchanged data score above 0.2), so small nights would always "drift".
    min_rows: int = 200

    def level(self, psi: float) -> str:
        if self.fail_psi is not None and psi >= self.fail_psi:
            return "fail"
        return "warn" if psi >= self.warn_psi else "ok"


def settings(suite_spec: dict[str, Any], suite_path: str) -> Settings:
    """The suite's `meta.drift` settings, refusing (BadInput, naming the key) what cannot be used."""
    raw = (suite_spec.get("meta") or {}).get("drift") or {}
    where = f"{suite_path}: meta.drift"
    if not isinstance(raw, dict):
        raise BadInput(f"{where} must be a mapping such as {{warn_psi: 0.2, fail_psi: null}}, got {raw!r}")
    unknown = sorted(set(raw) - set(_KNOWN_KEYS))
    if unknown:
        raise BadInput(f"{where} has unknown key(s) {', '.join(unknown)} (known: {', '.join(_KNOWN_KEYS)})")
    found = Settings(suite=suite_path)
    warn = _positive(raw.get("warn_psi", found.warn_psi), f"{where}.warn_psi")
    fail = None if raw.get("fail_psi") is None else _positive(raw["fail_psi"], f"{where}.fail_psi")
    bins = int(_positive(raw.get("bins", found.bins), f"{where}.bins"))
    rows = int(_positive(raw.get("sample_rows", found.sample_rows), f"{where}.sample_rows"))
    least = int(_positive(raw.get("min_rows", found.min_rows), f"{where}.min_rows"))
    if bins < 2 or rows < 100:
        raise BadInput(f"{where}: bins must be >= 2 and sample_rows >= 100 (got {bins}, {rows})")
    return Settings(warn, fail, bins, rows, suite_path, least)


def _positive(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise BadInput(f"{key} must be a positive number, got {value!r}")
    return float(value)


# --- which columns -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    """The dataset's label and the rule that picks its feature columns from a file's columns."""

    id_column: str
    label_column: str
    label_kind: str  # categorical (classification) | numeric (regression)
    features: tuple[str, ...] = ()
    feature_prefix: str = ""
    exclude: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: PipelineConfig) -> Columns:
        d = config.dataset
        task = str(getattr(d, "task", "classification"))
        return cls(
            id_column=d.id_column,
            label_column=d.label_column,
            label_kind="numeric" if task == "regression" else "categorical",
            features=tuple(getattr(d, "features", ()) or ()),
            feature_prefix=str(getattr(d, "feature_prefix", "") or ""),
            exclude=tuple(getattr(d, "exclude", ()) or ()),
            categorical=tuple(getattr(d, "categorical", ()) or ()),
        )

    def feature_names(self, names: list[str]) -> list[str]:
        """The feature columns among a file's `names`, in the file's order."""
        if self.features:
            return [n for n in names if n in self.features]
        reserved = {self.id_column, self.label_column, "date", *self.exclude}
        return [n for n in names if n not in reserved and n.startswith(self.feature_prefix)]

    def watched(self, names: list[str]) -> list[str]:
        return [*self.feature_names(names), *([self.label_column] if self.label_column in names else [])]


# --- a bounded uniform sample --------------------------------------------------------------------


class _Pool:
    """A uniform sample of at most `cap` rows in bounded memory: each row draws a random key and
    the rows with the smallest keys stay (so a batch only hands over rows under the current cut)."""

    def __init__(self, cap: int, rng: np.random.Generator) -> None:
        self.cap, self.rng = cap, rng
        self.parts: list[tuple[pd.DataFrame, np.ndarray]] = []
        self.cut = math.inf
        self.rows = 0
        self.partitions = 0

    def add(self, rows: int, take: Any) -> None:
        """Offer `rows` rows; `take(positions)` returns those rows as a pandas frame."""
        self.rows += rows
        keys = self.rng.random(rows)
        keep = np.flatnonzero(keys < self.cut)
        if len(keep) > self.cap:
            keep = np.sort(keep[np.argpartition(keys[keep], self.cap - 1)[: self.cap]])
        if len(keep):
            self.parts.append((take(keep), keys[keep]))
        if sum(len(k) for _, k in self.parts) > 2 * self.cap:
            self._trim()

    def _trim(self) -> None:
        keys = np.concatenate([k for _, k in self.parts])
        if len(keys) <= self.cap:
            return
        self.cut = float(np.partition(keys, self.cap - 1)[self.cap - 1])
        self.parts = [(f[k <= self.cut], k[k <= self.cut]) for f, k in self.parts if (k <= self.cut).any()]

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        self._trim()
        return pd.concat([f for f, _ in self.parts], ignore_index=True) if self.parts else pd.DataFrame()


@dataclass
class Watch:
    """What validate feeds while it reads the snapshot; `check()` measures and publishes the drift."""

    settings: Settings
    columns: Columns
    # Why nothing is measured (no earlier partition, or no new one); None when the watch samples.
    idle_reason: str | None
    reference: _Pool = field(init=False)
    new: _Pool = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(0)
        self.reference, self.new = _Pool(self.settings.sample_rows, rng), _Pool(self.settings.sample_rows, rng)

    @classmethod
    def for_run(cls, config: PipelineConfig, suite_spec: dict[str, Any], earlier: int, new: int) -> Watch:
        """A watch for a snapshot of `earlier` reference partitions and `new` partitions in the interval."""
        found = settings(suite_spec, config.dataset.expectation_suite)
        idle = None
        if not new:
            idle = "no new partition in the interval"
        elif not earlier:
            idle = "no earlier partition to compare with (every partition of the snapshot is new)"
        return cls(found, Columns.of(config), idle)

    def start_partition(self, new: bool) -> None:
        (self.new if new else self.reference).partitions += 1

    def add_batch(self, batch: pa.RecordBatch | pa.Table, new: bool) -> None:
        """Offer one Arrow batch of a partition (new: in the run's interval)."""
        if self.idle_reason is None:
            table = batch.select(self.columns.watched(batch.schema.names))
            (self.new if new else self.reference).add(table.num_rows, lambda keep: table.take(keep).to_pandas())

    def add_frame(self, frame: pd.DataFrame, new: bool) -> None:
        """Offer a whole partition read as a pandas frame."""
        if self.idle_reason is None:
            part = frame[self.columns.watched(list(frame.columns))]
            (self.new if new else self.reference).add(len(part), lambda keep: part.iloc[keep])

    def check(self, store: str, run_id: str) -> dict[str, Any]:
        """Measure, log a line per drifted column, write drift.json (and the PNG); the result's summary."""
        table = self.measure()
        log_table(table)
        return publish(table, store, run_id)

    def _too_few_rows(self) -> str | None:
        least = self.settings.min_rows
        for side, pool in (("new", self.new), ("earlier", self.reference)):
            if pool.rows < least:
                return f"{pool.rows} {side} rows, fewer than meta.drift.min_rows {least} (too few to tell drift from noise)"
        return None

    def measure(self) -> dict[str, Any]:
        sides = {
            side: {"partitions": pool.partitions, "rows": pool.rows, "sampled": min(pool.rows, pool.cap)}
            for side, pool in (("reference", self.reference), ("new", self.new))
        }
        base: dict[str, Any] = {"settings": asdict(self.settings), **sides}
        idle = self.idle_reason or self._too_few_rows()
        if idle is not None:
            return {**base, "status": "not measured", "line": f"not measured: {idle}", "columns": []}
        return {**base, **compare(self.reference.frame(), self.new.frame(), self.columns, self.settings)}


# --- the index -----------------------------------------------------------------------------------


def psi(reference: np.ndarray, new: np.ndarray) -> float:
    """The PSI of two share vectors over the same bins (empty bins count as EPSILON)."""
    ref, cur = np.maximum(reference, EPSILON), np.maximum(new, EPSILON)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


def numeric_bins(reference: np.ndarray, new: np.ndarray, bins: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bin labels and the (reference, new) counts, at the reference's quantiles; nulls last."""
    ref_ok, new_ok = reference[~np.isnan(reference)], new[~np.isnan(new)]
    edges = np.unique(np.quantile(ref_ok, np.linspace(0, 1, bins + 1)[1:-1])) if len(ref_ok) else np.empty(0)
    ref_counts = np.bincount(np.searchsorted(edges, ref_ok, side="right"), minlength=len(edges) + 1)
    new_counts = np.bincount(np.searchsorted(edges, new_ok, side="right"), minlength=len(edges) + 1)
    shown = [f"{e:.4g}" for e in edges]
    labels = [f"< {shown[0]}"] if len(edges) else ["all"]
    labels += [f"[{a}, {b})" for a, b in itertools.pairwise(shown)]
    labels += [f">= {shown[-1]}"] if len(edges) else []
    nulls = (len(reference) - len(ref_ok), len(new) - len(new_ok))
    if any(nulls):
        labels.append(NULL)
        ref_counts, new_counts = np.append(ref_counts, nulls[0]), np.append(new_counts, nulls[1])
    return labels, ref_counts, new_counts


def categorical_bins(reference: pd.Series, new: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bin labels and counts per value: the reference's most frequent values, the rest as OTHER."""
    ref, cur = _as_text(reference), _as_text(new)
    ref_counts = ref.value_counts()
    kept = list(ref_counts.index[:MAX_CATEGORIES])
    if len(ref_counts) > MAX_CATEGORIES or not set(cur.unique()) <= set(kept):
        kept.append(OTHER)
    ref, cur = ref.where(ref.isin(kept), OTHER), cur.where(cur.isin(kept), OTHER)
    return (
        [str(k) for k in kept],
        ref.value_counts().reindex(kept, fill_value=0).to_numpy(),
        cur.value_counts().reindex(kept, fill_value=0).to_numpy(),
    )


def _as_text(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), NULL).astype(str)


def _kind(values: pd.Series, name: str, columns: Columns) -> str:
    import pandas as pd

    if name == columns.label_column:
        return columns.label_kind
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    return "numeric" if numeric and name not in columns.categorical else "categorical"


def column_entry(name: str, reference: pd.Series, new: pd.Series, kind: str, found: Settings) -> dict[str, Any]:
    """One column's PSI, level and bins (shares per side)."""
    import pandas as pd

    if kind == "numeric":
        labels, ref_counts, new_counts = numeric_bins(
            pd.to_numeric(reference, errors="coerce").to_numpy(np.float64),
            pd.to_numeric(new, errors="coerce").to_numpy(np.float64),
            found.bins,
        )
    else:
        labels, ref_counts, new_counts = categorical_bins(reference, new)
    used = (ref_counts + new_counts) > 0  # a bin neither side fills adds nothing: keep the table short
    labels, ref_counts, new_counts = (
        [b for b, u in zip(labels, used, strict=True) if u],
        ref_counts[used],
        new_counts[used],
    )
    ref_shares, new_shares = _shares(ref_counts), _shares(new_counts)
    value = round(psi(ref_shares, new_shares), 4)
    return {
        "column": name,
        "kind": kind,
        "psi": value,
        "level": found.level(value),
        "bins": [
            {"bin": label, "reference": round(float(r), 4), "new": round(float(n), 4)}
            for label, r, n in zip(labels, ref_shares, new_shares, strict=True)
        ],
    }


def compare(reference: pd.DataFrame, new: pd.DataFrame, columns: Columns, found: Settings) -> dict[str, Any]:
    """Every watched column's entry (most drifted first), the verdict and its one-line summary."""
    names = [n for n in columns.watched(list(reference.columns)) if n in new.columns]
    entries = [
        {**column_entry(n, reference[n], new[n], _kind(reference[n], n, columns), found), "role": _role(n, columns)}
        for n in names
    ]
    entries.sort(key=lambda e: -e["psi"])
    failed = [e for e in entries if e["level"] == "fail"]
    drifted = [e for e in entries if e["level"] != "ok"]
    status = "failed" if failed else "drift" if drifted else "no drift"
    return {"status": status, "line": _line(status, entries, drifted, found), "columns": entries}


def _role(name: str, columns: Columns) -> str:
    return "label" if name == columns.label_column else "feature"


def _name(entry: dict[str, Any]) -> str:
    return f"label '{entry['column']}'" if entry["role"] == "label" else str(entry["column"])


def _line(status: str, entries: list[dict[str, Any]], drifted: list[dict[str, Any]], found: Settings) -> str:
    """The compact line the outputs, the summary and the log carry."""
    if not entries:
        return "not measured: no column in common between the new and the earlier partitions"
    features = sum(e["role"] == "feature" for e in entries)
    scope = f"{features} features" + (" and the label" if features < len(entries) else "")
    if status == "no drift":
        top = entries[0]
        return f"no drift: largest PSI {top['psi']:.3f} ({_name(top)}) over {scope}, below warn_psi {found.warn_psi:g}"
    shown = ", ".join(f"{_name(e)} {e['psi']:.3f}" for e in drifted[:5]) + (", ..." if len(drifted) > 5 else "")
    if status == "failed":
        limit = f"fail_psi {found.fail_psi:g}"
        return f"FAILED: {sum(e['level'] == 'fail' for e in drifted)} of {scope} at or above {limit}: {shown}"
    return f"drift: {len(drifted)} of {scope} at or above warn_psi {found.warn_psi:g}: {shown}"


# --- evidence ------------------------------------------------------------------------------------


def log_table(table: dict[str, Any]) -> None:
    """One task-log line per drifted column, then the summary line."""
    sides = f"{table['new']['rows']} new rows vs {table['reference']['rows']} earlier"
    for entry in table["columns"]:
        if entry["level"] != "ok":
            log.warning("drift: %s PSI %.3f (%s)", _name(entry), entry["psi"], entry["level"])
    (log.warning if table["status"] in ("drift", "failed") else log.info)("%s (%s)", table["line"], sides)


def publish(table: dict[str, Any], store: str, run_id: str) -> dict[str, Any]:
    """Write drift.json (and drift.png when something was measured); return the result's summary."""
    summary: dict[str, Any] = {
        "status": table["status"],
        "line": table["line"],
        "uri": layout.drift_table_uri(store, run_id),
        "drifted": {_name(e): e["psi"] for e in table["columns"] if e["level"] != "ok"},
        "failed": {_name(e): e["psi"] for e in table["columns"] if e["level"] == "fail"},
    }
    if table["columns"]:
        with storage.temp_dir(prefix="gauntlet-drift-") as tmp:
            png = plot(table, Path(tmp) / "drift.png")
            summary["plot_uri"] = layout.drift_plot_uri(store, run_id)
            storage.upload_file(png, summary["plot_uri"], "image/png")
    storage.put_json(summary["uri"], {**table, "plot_uri": summary.get("plot_uri")})
    return summary


def not_measured(reason: str) -> dict[str, Any]:
    """The result's summary when no drift was measured (nothing written)."""
    return {"status": "not measured", "line": f"not measured: {reason}", "drifted": {}, "failed": {}}


def failure_message(summary: dict[str, Any], suite: str) -> str:
    """The validation problem a failing drift adds: the columns, their PSI and the key to change."""
    shown = ", ".join(f"{name} PSI {value:.3f}" for name, value in summary["failed"].items())
    return (
        f"drift: {shown} at or above meta.drift.fail_psi in {suite}; if the new data is right, raise fail_psi "
        f"there (the drift table: {summary['uri']})"
    )


def plot(table: dict[str, Any], path: Path) -> Path:
    """PSI per column (most drifted first, with the levels), then reference vs new shares per bin."""
    import matplotlib

    matplotlib.use("Agg")  # workers and Airflow tasks have no display
    import matplotlib.pyplot as plt

    entries, found = table["columns"], table["settings"]
    panels = [e for e in entries if e["psi"] > 0][:PLOT_PANELS]
    fig = plt.figure(figsize=(11.0, 8.0), dpi=100)
    grid = fig.add_gridspec(2, max(len(panels), 1), height_ratios=[1.1, 1.0])
    _psi_bars(fig.add_subplot(grid[0, :]), entries[:PLOT_COLUMNS], found, table)
    for i, entry in enumerate(panels):
        _shares_panel(fig.add_subplot(grid[1, i]), entry)
    try:
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def _psi_bars(ax: Any, entries: list[dict[str, Any]], found: dict[str, Any], table: dict[str, Any]) -> None:
    colours = {"ok": "tab:blue", "warn": "tab:orange", "fail": "tab:red"}
    names = [_name(e) for e in entries][::-1]
    ax.barh(names, [e["psi"] for e in entries][::-1], color=[colours[e["level"]] for e in entries][::-1])
    ax.axvline(found["warn_psi"], color="tab:orange", linestyle="--", label=f"warn_psi {found['warn_psi']:g}")
    if found["fail_psi"] is not None:
        ax.axvline(found["fail_psi"], color="tab:red", linestyle="--", label=f"fail_psi {found['fail_psi']:g}")
    ax.set_xlabel("population stability index (PSI)")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(True, axis="x", alpha=0.3)
    sides = {
        side: f"{table[side]['rows']} rows in {_count(table[side]['partitions'], 'partition')}"
        for side in ("new", "reference")
    }
    ax.set_title(
        f"Drift of new data: {sides['new']} vs {sides['reference']} before\n{table['line'][:110]}", fontsize="medium"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _shares_panel(ax: Any, entry: dict[str, Any]) -> None:
    bins = entry["bins"]
    x = np.arange(len(bins))
    ax.bar(x - 0.2, [b["reference"] for b in bins], width=0.4, color="tab:gray", label="earlier")
    ax.bar(x + 0.2, [b["new"] for b in bins], width=0.4, color="tab:red", label="new")
    ax.set_xticks(x, [b["bin"][:12] for b in bins], rotation=60, ha="right", fontsize="x-small")
    ax.set_ylabel("share of rows")
    ax.set_title(f"{_name(entry)}: PSI {entry['psi']:.3f} ({entry['level']})", fontsize="small")
    ax.legend(fontsize="x-small")
    ax.grid(True, axis="y", alpha=0.3)
