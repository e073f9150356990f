"""Training augmentation and fixed acquisition-like shifts, in torch ops.

All functions take and return float32 [N, 1, H, W] images in [0, 1] (i.e.
after contract step 2, before normalisation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _gauss_kernels(sigmas: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """[N] sigmas -> [N, 1, 2r+1, 2r+1] normalised Gaussian kernels."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(t[None, :] ** 2) / (2 * sigmas[:, None] ** 2))
    g = g / g.sum(dim=1, keepdim=True)
    return (g[:, :, None] * g[:, None, :])[:, None]


def blur(x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur (sigma in pixels), reflect padding."""
    n = x.shape[0]
    k = _gauss_kernels(sigmas.clamp(min=0.05))
    r = k.shape[-1] // 2
    xp = F.pad(x.reshape(1, n, *x.shape[2:]), (r, r, r, r), mode="reflect")
    return F.conv2d(xp, k, groups=n).reshape_as(x)


def affine(x: torch.Tensor, angle_deg, scale, tx, ty) -> torch.Tensor:
    """Per-image rotation/scale/translation (translation in half-widths), border padding."""
    a = angle_deg * math.pi / 180.0
    cos, sin = torch.cos(a) / scale, torch.sin(a) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Light geometric + strong intensity augmentation for robustness to acquisition.

    Geometry: rotation U(-8, 8) deg, scale U(0.9, 1.12), shift U(-0.06, 0.06).
    Intensity: gamma exp(U(-0.45, 0.45)), contrast U(0.7, 1.35) about the image
    mean, brightness U(-0.08, 0.08); with p=0.35 Gaussian blur sigma U(0.3,
    1.6); with p=0.35 unsharp masking; with p=0.5 Gaussian noise std U(0,
    0.03). Clamped to [0, 1].
    """
    n = x.shape[0]

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=g)

    x = affine(x, u(-8, 8), u(0.9, 1.12), u(-0.06, 0.06), u(-0.06, 0.06))
    gamma = torch.exp(u(-0.45, 0.45)).view(n, 1, 1, 1)
    x = x.clamp(1e-6, 1.0) ** gamma
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - m) * u(0.7, 1.35).view(n, 1, 1, 1) + m + u(-0.08, 0.08).view(n, 1, 1, 1)
    sig = u(0.3, 1.6)
    bl = blur(x, sig)
    pick = (torch.rand(n, generator=g) < 0.35).view(n, 1, 1, 1)
    sharpen = (torch.rand(n, generator=g) < 0.35).view(n, 1, 1, 1) & ~pick
    amount = u(0.3, 1.0).view(n, 1, 1, 1)
    x = torch.where(pick, bl, torch.where(sharpen, x + amount * (x - bl), x))
    noise = (torch.rand(n, generator=g) < 0.5).view(n, 1, 1, 1) * u(0, 0.03).view(n, 1, 1, 1)
    x = x + noise * torch.randn(x.shape, generator=g)
    return x.clamp(0.0, 1.0)


# Fixed, deterministic acquisition-like shifts applied to validation images
# for model selection and threshold choice (validation data only).
SHIFTS = ("clean", "dark_contrast", "washed_blur", "noisy_zoom")


def apply_shift(x: torch.Tensor, name: str) -> torch.Tensor:
    """Deterministic shift of [N,1,H,W] in [0,1]; see SHIFTS."""
    n = x.shape[0]
    if name == "clean":
        return x
    if name == "dark_contrast":  # gamma 1.4, contrast x1.25
        x = x.clamp(1e-6, 1) ** 1.4
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - m) * 1.25 + m).clamp(0, 1)
    if name == "washed_blur":  # gamma 0.7, contrast x0.75, blur sigma 1.2
        x = x.clamp(1e-6, 1) ** 0.7
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - m) * 0.75 + m
        return blur(x, torch.full((n,), 1.2)).clamp(0, 1)
    if name == "noisy_zoom":  # zoom 1.08, noise std 0.02 (fixed seed)
        z = torch.zeros(n)
        x = affine(x, z, torch.full((n,), 1.08), z, z)
        gen = torch.Generator().manual_seed(1234)
        return (x + 0.02 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    raise ValueError(f"unknown shift {name!r}")
