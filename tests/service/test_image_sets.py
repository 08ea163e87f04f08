"""Image sets: importing a folder or the built-in photos, compact members, refused input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import Engine, func, select

from service.cli import fvlab
from service.store import image_sets, photos
from service.store.db import make_engine, unit_of_work
from service.store.image_sets import (
    ImageSetError,
    add_builtin,
    add_folder,
    complete_set,
    list_sets,
    member_batches,
    member_sources,
    remove_set,
)
from service.store.models import ImageSet, ImageSetMember, ImageSetStatus
from tests.conftest import create_schema


def _photo(path: Path, size: tuple[int, int], seed: int, mode: str = "RGB") -> None:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Five good photos (one twice), an empty file, a text file, a truncated JPEG, a thumbnail."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    _photo(root / "wide.jpg", (600, 400), 1)
    _photo(root / "tall.PNG", (300, 500), 2)
    _photo(root / "grey.png", (256, 256), 3, mode="L")
    _photo(root / "small.webp", (120, 90), 4)
    _photo(root / "sub" / "deep.jpg", (400, 400), 5)
    shutil.copy(root / "wide.jpg", root / "wide copy.jpg")
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.png").write_text("not an image")
    data = (root / "wide.jpg").read_bytes()
    (root / "cut.jpg").write_bytes(data[: len(data) // 2])
    _photo(root / "thumb.png", (20, 20), 6)
    (root / "readme.txt").write_text("ignored: not an image suffix")
    return root


def _counts(engine: Engine) -> tuple[int, int]:
    with unit_of_work(engine) as s:
        return (s.scalar(select(func.count(ImageSet.id))) or 0,
                s.scalar(select(func.count(ImageSetMember.id))) or 0)


def test_folder_import_skips_bad_files_and_dedupes(engine: Engine, folder: Path) -> None:
    seen: list[tuple[int, int]] = []
    result = add_folder(engine, "mine", folder, progress=lambda d, t: seen.append((d, t)))
    assert result.count == 4 and result.duplicates == 1
    assert sorted(line.split(":")[0] for line in result.skipped) == [
        "cut.jpg", "empty.jpg", "notes.png", "thumb.png"]
    assert all("\n" not in line for line in result.skipped)
    assert seen[-1] == (9, 9) and [d for d, _ in seen] == list(range(1, 10))
    [info] = list_sets(engine)
    assert (info.name, info.status, info.count) == ("mine", "complete", 4)
    with unit_of_work(engine) as s:
        image_set = complete_set(s, "mine")
        assert image_set.source == str(folder.resolve())
    assert member_sources(engine, image_set.id) == ["grey.png", "small.webp", "tall.PNG",
                                                    "wide copy.jpg"]
    batches = list(member_batches(engine, image_set.id, batch_size=3))
    assert [b.positions.tolist() for b in batches] == [[0, 1, 2], [3]]
    assert batches[0].pixels.shape == (3, 224, 224, 3) and batches[0].pixels.dtype == np.uint8
    grey = batches[0].pixels[0].astype(int)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 2  # a grey photo stays grey
    middle = list(member_batches(engine, image_set.id, batch_size=10, start=1, stop=3))
    assert [b.positions.tolist() for b in middle] == [[1, 2]]


def test_recursive_and_limit(engine: Engine, folder: Path) -> None:
    deep = add_folder(engine, "deep", folder, recursive=True)
    assert deep.count == 5
    with unit_of_work(engine) as s:
        set_id = complete_set(s, "deep").id
    assert "sub/deep.jpg" in member_sources(engine, set_id)
    assert add_folder(engine, "two", folder, limit=2).count == 2
    with pytest.raises(ImageSetError, match=r"no images .* \(--recursive also looks in sub"):
        add_folder(engine, "none", folder.parent)


@pytest.mark.parametrize(
    ("name", "where", "kwargs", "message"),
    [
        ("taken", "folder", {}, "an image set named 'taken' already exists"),
        ("bad name", "folder", {}, "must be 1–100 letters"),
        ("x" * 101, "folder", {}, "must be 1–100 letters"),
        ("ok", "folder", {"limit": 0}, "limit must be at least 1 image, got 0"),
        ("ok", "missing", {}, "is not a folder"),
        ("ok", "empty", {}, "no images"),
        ("ok", "junk", {}, r"no readable images in .* \(2 skipped; first: a.jpg: "),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    engine: Engine, folder: Path, tmp_path: Path, name: str, where: str,
    kwargs: dict[str, int], message: str,
) -> None:
    add_folder(engine, "taken", folder, limit=1)
    before = _counts(engine)
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_text("junk")
    (tmp_path / "junk" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    path = folder if where == "folder" else tmp_path / where
    with pytest.raises(ImageSetError, match=message) as caught:
        add_folder(engine, name, path, **kwargs)
    assert "\n" not in str(caught.value)
    assert _counts(engine) == before


def test_an_interrupted_import_leaves_nothing(engine: Engine, folder: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_sets, "CHUNK", 1)  # members are written before the interruption

    def interrupt(done: int, total: int) -> None:
        if done == 6:
            assert _counts(engine)[1] >= 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        add_folder(engine, "cut", folder, progress=interrupt)
    assert _counts(engine) == (0, 0)


def test_only_complete_sets_are_usable(engine: Engine, folder: Path) -> None:
    with unit_of_work(engine) as s:
        s.add(ImageSet(name="half", source="x", status=ImageSetStatus.IMPORTING))
    with unit_of_work(engine) as s, pytest.raises(ImageSetError, match="still importing"):
        complete_set(s, "half")
    with unit_of_work(engine) as s, pytest.raises(ImageSetError, match="no image set named"):
        complete_set(s, "nope")
    with pytest.raises(ImageSetError, match="fvlab images remove half deletes it"):
        add_folder(engine, "half", folder)
    remove_set(engine, "half")
    assert add_folder(engine, "half", folder).count == 4
    with pytest.raises(ImageSetError, match="no image set named 'gone'"):
        remove_set(engine, "gone")


def test_builtin_photos(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    create_schema(engine)
    result = add_builtin(engine)
    assert result.count > 300 and not result.skipped
    with unit_of_work(engine) as s:
        set_id = complete_set(s, "photos").id
    sources = member_sources(engine, set_id)
    per_source = {src: sources.count(src) for src in set(sources)}
    assert len(per_source) == len(photos.SKIMAGE_PHOTOS) + len(photos.MATPLOTLIB_PHOTOS)
    assert set(per_source.values()) == {28}  # every crop of a photo shares its source
    with unit_of_work(engine) as s:
        sizes = s.scalars(select(func.length(ImageSetMember.data))).all()
    assert max(sizes) <= 30 * 1024
    with pytest.raises(ImageSetError, match="already exists"):
        add_builtin(engine)
    engine.dispose()


def test_cli_add_list_remove(tmp_path: Path, folder: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    create_schema(engine)
    monkeypatch.setenv("FVLAB_DATABASE_URL", url)
    monkeypatch.setattr(photos, "SKIMAGE_PHOTOS", ("astronaut",))
    runner = CliRunner()
    added = runner.invoke(fvlab, ["images", "add", "mine", str(folder), "--limit", "3"])
    assert added.exit_code == 0, added.output
    assert "image set mine: 3 images, " in added.output
    built = runner.invoke(fvlab, ["images", "add", "photos"])
    assert built.exit_code == 0, built.output
    assert "image set photos: 56 images, 0 files skipped" in built.output
    listed = runner.invoke(fvlab, ["images", "list"])
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[1].split()[:3] == ["mine", "complete", "3"]
    assert lines[2].split()[:3] == ["photos", "complete", "56"]
    for args, message in [
        (["images", "add", "mine", str(folder)], "Error: an image set named 'mine' already exists"),
        (["images", "add", "other"], "Error: DIR is needed; only the built-in set 'photos'"),
        (["images", "add", "photos", str(folder)], "Error: 'photos' is the built-in set"),
        (["images", "add", "x", str(tmp_path / "nope")], "is not a folder"),
    ]:
        refused = runner.invoke(fvlab, args)
        assert refused.exit_code != 0 and message in refused.output, refused.output
        assert "Traceback" not in refused.output and "importing" not in refused.output
    assert runner.invoke(fvlab, ["images", "remove", "mine"]).exit_code == 0
    assert "mine" not in runner.invoke(fvlab, ["images", "list"]).output
    engine.dispose()


def test_migration_makes_existing_stimuli_max_renders(db_url: str) -> None:
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import IntegrityError

    from service.store.migrate import downgrade, upgrade

    upgrade(db_url, "0002")  # a database from before image sets, holding one stimulus
    engine = make_engine(db_url)
    now = "2026-01-01 00:00:00+00:00"
    stimulus = ("INSERT INTO stimuli (direction_id, replicate, token, image_sha256, objective, "
                "render_seconds, created_at{sign}) VALUES (1, 0, :token, 'a', 1.0, 1.0, :now{v})")
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO jobs (id, name, model, layers, n_basis, n_random, random_kind, objective,"
            " image_size, steps, lr, seed, replicates, render_settings, status, progress, total,"
            " created_at) VALUES (1, 'j', 'tiny', '[]', 1, 0, 'gaussian', 'dot', 8, 1, 0.1, 1, 1,"
            " '{}', 'done', 1, 1, :now)"), {"now": now})
        c.execute(text("INSERT INTO directions (id, job_id, layer, kind, \"index\", channel,"
                       " vector, seed) VALUES (1, 1, 'conv1', 'basis', 0, 0, :v, 1)"),
                  {"v": b"\0" * 4})
        c.execute(text("INSERT INTO images (sha256, png, width, height, created_at)"
                       " VALUES ('a', :png, 1, 1, :now)"), {"png": b"png", "now": now})
        c.execute(text(stimulus.format(sign="", v="")), {"token": "t0", "now": now})
    upgrade(db_url, "0003")
    checks = {c["name"] for c in inspect(engine).get_check_constraints("stimuli")}
    assert {"ck_stimuli_replicate", "ck_stimuli_sign"} <= checks  # kept through SQLite's copy
    with engine.begin() as c:
        assert c.execute(text("SELECT sign FROM stimuli")).scalar_one() == "max"
        c.execute(text(stimulus.format(sign=", sign", v=", 'min'")), {"token": "t1", "now": now})
    for token, sign in (("t2", "max"), ("t3", "top")):  # a second max 0; a sign that is none
        with pytest.raises(IntegrityError), engine.begin() as c:
            c.execute(text(stimulus.format(sign=", sign", v=f", '{sign}'")),
                      {"token": token, "now": now})
    with engine.begin() as c:
        c.execute(text("DELETE FROM stimuli WHERE sign = 'min'"))
    downgrade(db_url, "0002")
    with engine.begin() as c:
        assert c.execute(text("SELECT token FROM stimuli")).scalar_one() == "t0"
    engine.dispose()
