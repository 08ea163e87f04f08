"""`fvlab analyze --ratings FILE` needs neither the ORM nor torch; the package names its API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import analysis

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sqlalchemy.orm", "service.store.models", "service.store.db", "lightning")

ANALYZE_IN_A_CLEAN_PROCESS = """
import json, sys
from service.cli import main
sys.argv = ["fvlab", "analyze", "--ratings", sys.argv[1], "-o", sys.argv[2],
            "--bootstrap", "100", "--permutations", "100"]
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps(sorted(sys.modules)))
"""


def test_analyze_a_ratings_file_imports_neither_the_orm_nor_torch(tmp_path: Path) -> None:
    from analysis.simulate import CrowdSpec, simulate
    from service.studies.export import write_frame

    ratings = tmp_path / "ratings.csv"
    write_frame(simulate(CrowdSpec(n_annotators=12, n_stimuli=40, seed=1))[0], ratings)
    done = subprocess.run(
        [sys.executable, "-c", ANALYZE_IN_A_CLEAN_PROCESS, str(ratings), str(tmp_path / "out")],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert (tmp_path / "out" / "results.json").exists()
    assert "analysis.pipeline" in loaded  # the analysis did run in that process
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_package_names_its_entry_points() -> None:
    for name in analysis.__all__:
        assert getattr(analysis, name) is not None, name
    assert set(analysis.__all__) == set(analysis._HOMES) | set(analysis._MODULES)
    assert callable(analysis.analyze) and callable(analysis.simulate.simulate)
    assert callable(analysis.power.power)
