"""Parameterization and transforms: shapes, ranges, and that the folded affine map is exact."""

from __future__ import annotations

import torch

from service.featurevis.param import FourierImage
from service.featurevis.transforms import (
    TransformSettings,
    affine_matrices,
    apply_transforms,
    draw_transforms,
)


def test_fourier_image_is_seeded_per_image_and_in_range() -> None:
    a = FourierImage([1, 2], 24).image().detach()
    b = FourierImage([2], 24).image().detach()
    assert a.shape == (2, 3, 24, 24)
    assert float(a.min()) > 0 and float(a.max()) < 1
    torch.testing.assert_close(a[1], b[0])
    assert not torch.allclose(a[0], a[1])


def test_identity_settings_leave_the_image_unchanged() -> None:
    settings = TransformSettings(0, 0.5, 0, 1.0, 1.0, 0, 0)
    images = torch.rand(3, 3, 16, 16)
    draws = draw_transforms([1, 2, 3], 1, settings)[:, 0]
    out = apply_transforms(images, affine_matrices(draws, 16, settings), settings)
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_jitter_is_an_integer_crop_of_the_padded_image() -> None:
    settings = TransformSettings(pad=3, pad_value=0.5, jitter=4, scale_min=1.0, scale_max=1.0,
                                 rotate_degrees=0, jitter_after=0)  # fmt: skip
    images = torch.rand(1, 3, 10, 10)
    padded = torch.nn.functional.pad(images, (3, 3, 3, 3), value=0.5)
    out_size = settings.output_size(10)
    for dx, dy in [(0, 0), (4, 1), (2, 3)]:
        draws = torch.tensor([[dx, dy, 1.0, 0.0, 0.0, 0.0]])
        out = apply_transforms(images, affine_matrices(draws, 10, settings), settings)
        expected = padded[:, :, dy : dy + out_size, dx : dx + out_size]
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_draws_stay_in_lucid_ranges_and_differ_per_image() -> None:
    settings = TransformSettings()
    draws = draw_transforms([7, 8], 500, settings)
    assert draws.shape == (2, 500, 6)
    assert draws[..., [0, 1]].min() >= 0 and draws[..., [0, 1]].max() <= 8
    assert 0.9 - 1e-6 <= draws[..., 2].min() and draws[..., 2].max() <= 1.1 + 1e-6
    assert draws[..., 3].abs().max() <= 10
    assert draws[..., [4, 5]].max() <= 4
    assert not torch.equal(draws[0], draws[1])
    torch.testing.assert_close(draw_transforms([8], 500, settings)[0], draws[1])
    assert settings.output_size(128) == 140
