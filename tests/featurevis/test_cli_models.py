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
