"""Ingest's quick path gives the slow path's results (issue 27).

Two things changed how a batch is audited: pyarrow reads a CSV's cells typed
(``reading.iter_typed_batch``, falling back to the exact reader where it could judge a file
differently) and whylogs gets vectorised splits and per-value counts (``profiling.FrameProfiler``).
Here the typed reader's audit is compared with the exact reader's (``audit_batch(exact=True)``:
typed rows, digest, violations, the Parquet written), and the profile with whylogs' own
``why.log`` per chunk, merged (what ingest made before): every count is equal, and the drift
report differs by no more than the sketches' stated error.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import whylogs as why

from ratchet.core.config import DriftConfig
from ratchet.data import ingest
from ratchet.data.profile_drift import drift_report
from ratchet.data.profiling import (
    FrameProfiler,
    deserialize_profile,
    merge_profiles,
    profile_frame,
)
from ratchet.data.schema_inference import infer_schema
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch

ROWS, CHUNK = 6_000, 2_000
# whylogs' KLL sketch (k=1024) ranks within about 0.33 %; a KS statistic read from two sketches
# within twice that, and two such statistics (this one and whylogs' own) within four times
KS_TOLERANCE = 4 * 0.0033


def _frame(rows: int, seed: int) -> pd.DataFrame:
    """The demo's columns plus a boolean, a datetime and an ignored free-text column."""
    f = generate_batch(0, rows, seed=seed)
    rng = np.random.default_rng(seed)
    f["flag"] = rng.choice(["true", "false", "yes", "n"], rows)
    f["when"] = (pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, rows), unit="s")).astype(str)
    f["note"] = [f"note {i % 997}" for i in range(rows)]
    return f


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    frame = _frame(ROWS, seed=11)
    return frame, infer_schema(frame.iloc[:3000], DEMO_TARGET), tmp_path_factory.mktemp("typed")


def _write(text: str, path):
    path.write_text(text, encoding="utf-8")
    return path


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def _both(path, schema, chunk_rows=CHUNK):
    return ingest.audit_batch(path, schema, chunk_rows), ingest.audit_batch(path, schema, chunk_rows, exact=True)


def _same_audit(quick, exact):
    assert [v.to_dict() for v in quick.violations] == [v.to_dict() for v in exact.violations]
    assert [v.to_dict() for v in quick.warnings] == [v.to_dict() for v in exact.warnings]
    assert (quick.rows, quick.digest, dict(quick.dtypes)) == (exact.rows, exact.digest, dict(exact.dtypes))


def test_typed_reader_types_cells_as_the_exact_reader(setting, tmp_path):
    frame, schema, _ = setting
    messy = frame.astype(object)
    messy.loc[5, "home_ownership"] = "  rent "  # stripped, as the exact reader strips it
    messy.loc[6, "income"] = " 52000 "
    messy.loc[7, "age"] = "NA"  # a null: the int column is float64 in that chunk, int64 in others
    messy.loc[8, "purpose"] = "N/A"
    # full precision, as to_csv writes floats: pandas' own parser is 1 ulp off on a third of these
    messy["debt_ratio"] = [repr(v) for v in np.random.default_rng(2).random(ROWS) * 0.9]
    messy.loc[9, "debt_ratio"] = "1e-1"
    messy.loc[ROWS - 1] = messy.loc[3]  # a duplicate row across chunks
    path = _write(_csv(messy), tmp_path / "messy.csv")
    quick, exact = _both(path, schema)
    assert quick.typed_read and not exact.typed_read
    _same_audit(quick, exact)
    assert quick.ok, quick.violations
    pd.testing.assert_frame_equal(quick.first_chunk, exact.first_chunk, check_exact=True)
    # the rows stage_batch writes: the same typed rows, in the whole batch's dtypes
    written = pd.concat(list(ingest.typed_frames(exact)), ignore_index=True)
    spilled = quick.spill.path
    assert spilled is None  # the int column's dtype changed between chunks: written by reading again
    again = pd.concat(list(ingest.typed_frames(quick)), ignore_index=True)
    pd.testing.assert_frame_equal(again, written, check_exact=True)
    one_quick, one_exact = _both(path, schema, chunk_rows=None)
    pd.testing.assert_frame_equal(one_quick.frame, one_exact.frame, check_exact=True)


def test_the_parquet_the_audit_writes_holds_the_exact_readers_rows(setting, tmp_path):
    frame, schema, _ = setting
    path = _write(_csv(frame), tmp_path / "clean.csv")
    quick, exact = _both(path, schema)
    _same_audit(quick, exact)
    written = pd.read_parquet(quick.spill.path)
    expected = pd.concat(list(ingest.typed_frames(exact)), ignore_index=True)
    pd.testing.assert_frame_equal(written, expected, check_exact=True)
    # a pickled copy (a task result persisted) owns no file: it reads the batch again
    copy = pickle.loads(pickle.dumps(quick))
    assert copy.spill.path is None and quick.spill.path.exists()
    pd.testing.assert_frame_equal(pd.concat(list(ingest.typed_frames(copy)), ignore_index=True), expected)


# the rule each file breaks (None: it passes)
CASES = {"not_a_number": "dtype", "overflow": "dtype", "spelled_nan": "dtype", "ragged": "malformed_csv",
         "stray_quote": "malformed_csv", "duplicate_header": "duplicate_column", "unseen_category": "unknown_category",
         "bad_label": "unknown_label", "not_utf8": "encoding", "quoted_ok": None, "bom": None,
         "not_whole": "dtype", "label_not_a_class": "unknown_label", "unnamed_column": "extra_column"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_file_the_typed_reader_cannot_judge_gets_the_exact_readers_verdict(setting, tmp_path, case):
    frame, schema, _ = setting
    head = frame.iloc[:3000].astype(object)  # 3 chunks of 1000: most cases break a later chunk
    if case == "not_a_number":
        head.loc[2500, "income"] = "abc"
    elif case == "overflow":
        head.loc[2500, "income"] = "1e400"  # pyarrow: inf; the exact reader: not a number
    elif case == "spelled_nan":
        head.loc[100, "debt_ratio"] = "NAN"
    elif case == "unseen_category":
        head.loc[100:130, "purpose"] = "holiday"
    elif case == "bad_label":
        head.loc[2600, DEMO_TARGET] = "maybe"
    elif case == "not_whole":  # a number, parsed; the message quotes the file's text
        head.loc[2700, "age"] = "41.50"
    elif case == "label_not_a_class":
        head.loc[2800, DEMO_TARGET] = "2.0"
    elif case == "quoted_ok":
        head.loc[10, "note"] = 'says "hi", twice'
    text = _csv(head)
    if case == "ragged":
        lines = text.splitlines()
        lines[2000] += ",extra"
        text = "\n".join(lines) + "\n"
    elif case == "stray_quote":
        lines = text.splitlines()
        lines[2200] = lines[2200].replace("note", '"note"x', 1)
        text = "\n".join(lines) + "\n"
    elif case == "duplicate_header":
        text = text.replace("purpose", "age", 1)
    elif case == "unnamed_column":  # pandas calls it 'Unnamed: 11'
        text = "\n".join(line + ",x" for line in text.splitlines()).replace(",x", ",", 1) + "\n"
    elif case == "bom":
        text = "\ufeff" + text
    path = _write(text, tmp_path / f"{case}.csv")
    if case == "not_utf8":
        data = path.read_bytes()
        path.write_bytes(data[:-200] + b"\xff" + data[-199:])
    quick, exact = _both(path, schema, chunk_rows=1000)
    _same_audit(quick, exact)
    rules = {v.rule for v in quick.violations + quick.warnings}
    assert rules == ({CASES[case]} if CASES[case] else set()), quick.violations
    if case in ("quoted_ok", "bom", "unseen_category"):  # files pyarrow judges as the exact reader does
        assert quick.typed_read


# ------------------------------------------------------------------ the profile
def _whylogs_own(frame: pd.DataFrame):
    """What ``profile_frame`` did before: ``why.log`` on the frame (text as pandas' string dtype)."""
    text = [c for c in frame.columns if frame[c].dtype == object
            and pd.api.types.infer_dtype(frame[c], skipna=True) == "string"]
    return why.log(pandas=frame.astype(dict.fromkeys(text, "string"))).view()


def _items_as_sets(summary: pd.DataFrame) -> pd.DataFrame:
    """Frequent items as sorted (value, estimate, bounds): the same sketch lists values of equal
    counts in the order they were first seen, which per-value counts change."""
    column = "frequent_items/frequent_strings"
    if column in summary:
        summary[column] = [sorted((i.value, i.est, i.lower, i.upper) for i in items) if isinstance(items, list) else items
                           for items in summary[column]]
    return summary


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # whylogs' own mean over infinities
def test_profile_is_whylogs_own_on_every_dtype():
    """Under whylogs' KLL size (1024 values) no sketch is random: the two profiles are equal."""
    rng = np.random.default_rng(3)
    n = 900
    f = pd.DataFrame({
        "float": rng.normal(size=n), "int": rng.integers(-5, 50, n),
        "text": rng.choice([" a", "bb", "c c", "é"], n).astype(object),
        "ids": [f"id{i}" for i in range(n)],  # mostly distinct: whylogs' own updates
        "bool": rng.random(n) < 0.3, "nullable": pd.array(rng.random(n) < 0.5, dtype="boolean"),
        "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
        "mixed": pd.Series([1, "x", 2.5] * (n // 3), dtype=object),
    })
    f.loc[::7, "float"] = np.nan
    f.loc[3, "float"], f.loc[4, "float"] = np.inf, -np.inf
    f.loc[::11, "text"] = np.nan
    f.loc[::5, "nullable"] = pd.NA
    ours, theirs = (_items_as_sets(p.to_pandas()) for p in (profile_frame(f), _whylogs_own(f)))
    assert sorted(ours.columns) == sorted(theirs.columns)
    pd.testing.assert_frame_equal(ours[sorted(ours.columns)], theirs[sorted(ours.columns)])
    # each chunk tracked into one profile: the counts of the whole
    chunked = FrameProfiler().track(f.iloc[:400]).track(f.iloc[400:]).view().to_pandas()
    for col in ["counts/n", "counts/null", "counts/nan", "counts/inf", "types/string", "types/fractional",
                "types/integral", "types/boolean", "distribution/max", "distribution/min"]:
        pd.testing.assert_series_equal(chunked[col], theirs[col], check_names=False)


def test_frequent_items_past_the_sketchs_exact_size_stay_within_its_error():
    """Over 768 distinct values the frequent-items sketch purges; with counts per value instead of
    one update per row its estimates stay within its a-priori error of the true counts."""
    rng = np.random.default_rng(5)
    n = 40_000
    values = pd.Series(rng.zipf(1.3, n).clip(max=5000).astype(str), dtype=object)  # ~1500 distinct, skewed
    assert 768 < values.nunique() < n / 2
    col = profile_frame(values.to_frame("v")).get_column("v")
    sketch = col.get_metric("frequent_items").frequent_strings.value
    error = sketch.get_apriori_error(10, n)
    truth = values.value_counts()
    import whylogs_sketching

    items = sketch.get_frequent_items(whylogs_sketching.frequent_items_error_type.NO_FALSE_NEGATIVES)
    assert len(items) > 10
    for item in items:  # (value, estimate, lower bound, upper bound)
        assert abs(item[1] - truth[item[0]]) <= error
    assert col.get_metric("counts").n.value == n


@pytest.fixture(scope="module")
def profiles(setting):
    """Two batches (the second drifted and with nulls), profiled by chunk both ways."""
    frame, schema, _ = setting
    drifted = generate_batch(5, ROWS, seed=12, data_drift_at=0, concept_drift_at=0, shift=0.3)
    drifted = drifted.assign(**{c: frame[c] for c in ("flag", "when", "note")})
    drifted.loc[::250, "income"] = np.nan  # 0.4 %: under the schema's 1 % null share
    out = {}
    for name, batch, path_name in (("ref", frame, "ref.csv"), ("new", drifted, "new.csv")):
        path = setting[2] / path_name
        batch.to_csv(path, index=False)
        audited = ingest.audit_batch(path, schema, CHUNK)
        assert audited.ok, audited.violations
        chunks = list(ingest.typed_frames(audited))
        before = merge_profiles(_whylogs_own(c) for c in chunks)
        out[name] = (deserialize_profile(audited.profile), before)
    return out, schema


def test_drift_and_profile_checks_stay_within_the_sketches_error(profiles):
    (ref_now, ref_before), (new_now, new_before) = profiles[0]["ref"], profiles[0]["new"]
    schema = profiles[1]
    cfg = DriftConfig()
    now = drift_report(ref_now, new_now, cfg, columns=schema.drift_feature_names)
    before = drift_report(ref_before, new_before, cfg, columns=schema.drift_feature_names)
    assert now.detected == before.detected
    assert now.drifted_features == before.drifted_features
    assert now.drifted_features  # the drifted batch does drift: the comparison is not vacuous
    for name, f in now.features.items():
        b = before.features[name]
        assert f["algorithm"] == b["algorithm"], name
        if f["algorithm"] == "ks":
            assert abs(f["statistic"] - b["statistic"]) <= KS_TOLERANCE, (name, f, b)
        else:  # chi-square on frequent items, exact under 768 distinct values: the same test
            assert f["statistic"] == pytest.approx(b["statistic"], rel=1e-9, abs=1e-9), name
            assert f["p_value"] == pytest.approx(b["p_value"], rel=1e-9, abs=1e-12), name
    # what the audit reads from the profile (nulls, infinities) and the counts: exact
    for now_view, before_view in ((ref_now, ref_before), (new_now, new_before)):
        a, b = now_view.to_pandas(), before_view.to_pandas()
        for col in ["counts/n", "counts/null", "counts/nan", "counts/inf", "types/string", "types/fractional",
                    "types/integral", "types/boolean", "distribution/mean", "distribution/max", "distribution/min"]:
            pd.testing.assert_series_equal(a[col].sort_index(), b[col].sort_index(), check_names=False,
                                           rtol=1e-9, obj=col)
