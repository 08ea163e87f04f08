"""Checking a job request builds no network: layers and channels come from the static table."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from sqlalchemy import Engine

from service.featurevis.layer_table import LAYERS
from service.generation.job_requests import JobError, JobRequest, validate
from service.generation.jobs import get_job, submit

REQUEST = JobRequest(model="tiny", layers=["conv2"], n_basis=2, n_random=2, image_size=32,
                     steps=4, seed=1)


@pytest.fixture
def modules_built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The class of every torch module constructed while the test runs."""
    built: list[str] = []
    real_init = torch.nn.Module.__init__

    def spy(self: torch.nn.Module, *args: object, **kwargs: object) -> None:
        built.append(type(self).__name__)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "__init__", spy)
    return built


def test_every_model_and_layer_is_checked_without_building_a_network(
    modules_built: list[str],
) -> None:
    for model, layers in LAYERS.items():
        for layer, channels in layers:
            request = replace(REQUEST, model=model, layers=[layer], n_basis=channels)
            found, settings = validate(request)
            assert found.channels(layer) == channels and settings["image_size"] == 32
            with pytest.raises(JobError, match=f"is more than the {channels} channels"):
                validate(replace(request, n_basis=channels + 1))
    assert modules_built == []


def test_a_job_is_submitted_without_building_a_network(
    engine: Engine, modules_built: list[str]
) -> None:
    job_id = submit(engine, replace(REQUEST, model="resnet50", layers=["layer3"], n_basis=5))
    assert get_job(engine, job_id).total == 7
    assert modules_built == []


def test_a_weights_file_must_exist_but_real_weights_are_the_workers_business(
    tmp_path, modules_built: list[str]
) -> None:
    with pytest.raises(JobError, match="model 'tiny': weights file for tiny not found"):
        validate(replace(REQUEST, weights=str(tmp_path / "absent.pt")))
    (tmp_path / "tiny.pt").write_bytes(b"")
    validate(replace(REQUEST, weights=str(tmp_path / "tiny.pt")))
    validate(replace(REQUEST, model="googlenet", layers=["inception4a"], weights=None))
    validate(replace(REQUEST, weights="random"))
    assert modules_built == []
