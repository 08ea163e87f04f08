"""Image parameterization: Lucid's Fourier-space image with 1/f scaling and decorrelated colour.

Optimizing pixels directly yields high-frequency noise; Lucid optimizes a spectrum scaled by
1/frequency (so all frequencies move at a similar rate), in a decorrelated colour space (the
square root of ImageNet's colour correlation), squashed into [0, 1] by a sigmoid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# Lucid's color_correlation_svd_sqrt: the square root of ImageNet's RGB correlation matrix.
COLOR_CORRELATION_SVD_SQRT = np.asarray(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
COLOR_CORRELATION_NORMALIZED = COLOR_CORRELATION_SVD_SQRT / np.max(
    np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0)
)
FFT_MAGIC = 4.0  # Lucid divides the inverse FFT by 4 to keep the initial image near grey


def spectrum_scale(height: int, width: int, decay_power: float) -> np.ndarray:
    """1 / |frequency|^decay_power for the rfft2 grid (the DC term clipped to 1/max side)."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    return (1.0 / np.maximum(freqs, 1.0 / max(height, width)) ** decay_power).astype(np.float32)


class FourierImage:
    """A batch of B square RGB images held as B independent Fourier spectra.

    Each image's initial spectrum comes from its own seed, so an image does not depend on its
    position in the batch or on the other images.
    """

    def __init__(
        self,
        seeds: Sequence[int],
        size: int,
        sd: float = 0.01,
        decay_power: float = 1.0,
        decorrelate: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        self.size = size
        self.decorrelate = decorrelate
        freq_shape = (3, size, size // 2 + 1, 2)
        init = torch.stack(
            [
                torch.randn(freq_shape, generator=torch.Generator().manual_seed(int(s))) * sd
                for s in seeds
            ]
        )
        self.spectrum = init.to(device).requires_grad_(True)
        scale = torch.from_numpy(spectrum_scale(size, size, decay_power))
        self._scale = scale.to(device)[None, None]
        self._color = torch.from_numpy(COLOR_CORRELATION_NORMALIZED).to(device)

    def parameters(self) -> list[torch.Tensor]:
        return [self.spectrum]

    def image(self) -> torch.Tensor:
        """The current images, B×3×S×S in [0, 1]."""
        spectrum = torch.view_as_complex(self.spectrum) * self._scale
        t = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho") / FFT_MAGIC
        if self.decorrelate:
            t = torch.einsum("ck,bkhw->bchw", self._color, t)
        return torch.sigmoid(t)
