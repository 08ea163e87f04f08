"""`fvlab models`: layers with channels and spatial sizes; clear errors."""

from __future__ import annotations

from click.testing import CliRunner

from service.cli import fvlab


def test_models_lists_layers_channels_and_sizes() -> None:
    result = CliRunner().invoke(
        fvlab, ["models", "--model", "efficientnet_lite0", "--model", "tiny", "--size", "64"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split() == ["blocks.10", "112", "4×4"] for line in lines)
    assert any(line.split() == ["head", "1280", "2×2"] for line in lines)
    assert any(line.split() == ["conv3", "32", "16×16"] for line in lines)
    assert "no trained weights" in result.output


def test_models_refuses_unknown_model_and_bad_size() -> None:
    unknown = CliRunner().invoke(fvlab, ["models", "--model", "lenet"])
    assert unknown.exit_code != 0 and "unknown model 'lenet'" in unknown.output
    bad = CliRunner().invoke(fvlab, ["models", "--model", "tiny", "--size", "0"])
    assert bad.exit_code != 0 and "at least 1 pixel" in bad.output


def test_models_reads_the_weights_dir_setting(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.setenv("FVLAB_WEIGHTS_DIR", str(tmp_path))
    (tmp_path / "alexnet-owt-7be5be79.pth").write_bytes(b"")
    result = CliRunner().invoke(fvlab, ["models", "--model", "alexnet"])
    assert result.exit_code == 0, result.output
    assert f"(weights: {tmp_path / 'alexnet-owt-7be5be79.pth'})" in result.output


def test_models_advice_names_only_options_that_exist(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    result = CliRunner().invoke(fvlab, ["models", "--model", "alexnet"])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert "put alexnet-owt-7be5be79.pth in the folder FVLAB_WEIGHTS_DIR or --weights-dir" in first
    assert "--weights PATH" not in result.output
    assert "`fvlab generate --weights random`" in first


def test_a_bad_weights_dir_setting_is_one_line(tmp_path, monkeypatch) -> None:
    absent = str(tmp_path / "no-such-folder")
    monkeypatch.setenv("FVLAB_WEIGHTS_DIR", absent)
    result = CliRunner().invoke(fvlab, ["models", "--model", "tiny"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        f"Error: FVLAB_WEIGHTS_DIR {absent!r} is not an existing directory"
    ]
