"""The README's command-line block runs as written, top to bottom, in one shell.

The block is read from README.md itself, so the test fails when the README drifts from what
the commands accept. Only sizes shrink (fewer directions and steps, fewer bootstrap draws),
each by an exact substitution that must apply; the port becomes a free one.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
TINY = {
    "--basis 8 --random 8 --steps 256": "--basis 2 --random 2 --steps 2 --size 32",
    "fvlab simulate -o simulated.csv": "fvlab simulate -o simulated.csv --stimuli 40 "
                                       "--annotators 8",
    "--ratings simulated.csv -o out/": "--ratings simulated.csv -o out/ --bootstrap 100 "
                                       "--permutations 100",
    "--p-basis 0.55 --p-random 0.45": "--p-basis 0.55 --p-random 0.45 --studies 2 "
                                      "--bootstrap 100 --permutations 100 --stimuli 40 "
                                      "--annotators 8",
}


def command_line_block() -> str:
    section = README.read_text().split("## Command line", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert match, "README.md's Command line section has no bash block"
    return match.group(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_the_command_line_block_runs_as_written(tmp_path: Path) -> None:
    script = command_line_block()
    for long, tiny in TINY.items():
        assert long in script, f"README block no longer contains {long!r}"
        script = script.replace(long, tiny)
    assert "PORT=8000" in script
    script = script.replace("PORT=8000", f"PORT={_free_port()}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FVLAB_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path, env=env,
        input="a long enough password\na long enough password\n", capture_output=True,
        text=True, timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert "job 1" in output or "done" in output, output
    assert (tmp_path / "var" / "fvlab.db").is_file()
    assert (tmp_path / "ratings.csv").read_text().startswith("rating_id,")
    assert (tmp_path / "out" / "results.json").is_file()
    assert (tmp_path / "out" / "report.html").is_file()
    assert re.search(r"/study/\S+", output), output
