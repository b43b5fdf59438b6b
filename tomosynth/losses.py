"""Loss functions: WGAN-GP gradient penalty; L1 content, least-squares adversarial and TV
losses of the SRGAN family and its LR-pitch (checkerboard) penalty. Weights come from the
config, never from literals here."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tomosynth.metrics.spectral import pitch_mask


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    lambda_gp: float = 10.0,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty ``lambda * E[(||grad_x D(x_hat)||_2 - 1)^2]`` (Gulrajani et al. 2017).

    ``x_hat = alpha * real + (1 - alpha) * fake`` with one ``alpha ~ U[0, 1)`` per sample, i.e.
    uniformly on the lines between paired real and generated samples, where an optimal critic
    has unit gradient norm.

    Parameters
    ----------
    critic : callable
        Maps a batch ``(N, ...)`` to scores ``(N,)`` or ``(N, 1)``.
    real, fake : torch.Tensor
        Batches of the same shape ``(N, ...)``; `fake` is treated as a constant.
    lambda_gp : float
        Penalty weight (thesis and paper: 10).
    alpha : torch.Tensor, optional
        Interpolation weights of shape ``(N,)``; drawn from torch's global generator if omitted.

    Returns
    -------
    torch.Tensor
        Scalar penalty, differentiable with respect to the critic's parameters.
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {tuple(real.shape)} != fake {tuple(fake.shape)}")
    n = real.shape[0]
    if alpha is None:
        alpha = torch.rand(n, device=real.device, dtype=real.dtype)
    alpha = alpha.reshape(n, *([1] * (real.dim() - 1))).to(real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    # Each score depends only on its own sample (no batch norm), so the gradient of the sum
    # holds the per-sample input gradients.
    norms = grad.flatten(1).norm(2, dim=1)
    return lambda_gp * ((norms - 1) ** 2).mean()


# --- SRGAN family losses (appended below by the SRGAN stage) ---------------------------------


def l1_content(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Pixel-wise L1 content loss ``mean |SR - HR|`` (report eq. 1, first term).

    Parameters
    ----------
    sr, hr : torch.Tensor
        Super-resolved and reference images of the same shape, in [0, 1].
    """
    if sr.shape != hr.shape:
        raise ValueError(f"l1_content: sr {tuple(sr.shape)} != hr {tuple(hr.shape)}")
    return (sr - hr).abs().mean()


def lsgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares adversarial loss of the generator ``mean (D(SR) - 1)^2`` (Mao et al. 2017).

    `fake_scores` are the raw discriminator outputs on generated images: a patch map
    ``(N, 1, h, w)`` or one score per image; every score is pushed towards the "real" label 1.
    """
    return ((fake_scores - 1.0) ** 2).mean()


def lsgan_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares discriminator loss ``(mean (D(HR) - 1)^2 + mean D(SR)^2) / 2``.

    Real scores are pushed towards 1 and generated ones towards 0, averaged over both terms
    as in the report.
    """
    return 0.5 * (((real_scores - 1.0) ** 2).mean() + (fake_scores**2).mean())


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Squared total variation ``mean (dx)^2 + mean (dy)^2`` of images ``(N, C, H, W)``.

    ``dy = x[..., 1:, :] - x[..., :-1, :]`` and ``dx = x[..., :, 1:] - x[..., :, :-1]``, each
    averaged over its own number of differences. A smoothness regulariser: 0 for a constant
    image, larger for noisy ones.
    """
    if x.dim() != 4:
        raise ValueError(f"total_variation: expected (N, C, H, W), got shape {tuple(x.shape)}")
    dy = x[..., 1:, :] - x[..., :-1, :]
    dx = x[..., :, 1:] - x[..., :, :-1]
    return (dy**2).mean() + (dx**2).mean()


def lr_pitch_power(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Spectral energy per pixel at the LR-pitch frequencies of a batch ``(N, C, H, W)``.

    The mean over images of the Hann-windowed power spectrum ``|FFT2(hann (x - mean x))|^2``,
    summed over the 3 x 3 bins around every ``(a / r, b / r)`` cycles/pixel and divided by
    ``(H W)^2``: the measure of :func:`tomosynth.metrics.spectral.lr_pitch_energy`, in torch
    and differentiable.
    """
    if x.dim() != 4:
        raise ValueError(f"lr_pitch_power: expected (N, C, H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    mask = torch.from_numpy(pitch_mask(h, w, scale)).to(x.device)
    window = torch.outer(
        torch.hann_window(h, periodic=False, dtype=x.dtype, device=x.device),
        torch.hann_window(w, periodic=False, dtype=x.dtype, device=x.device),
    )
    centred = x - x.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(centred * window).abs().square().flatten(0, 1).mean(dim=0)
    return power[mask].sum() / float(h * w) ** 2


def _excess(sr: torch.Tensor, hr: torch.Tensor, scale: int, eps: float) -> torch.Tensor:
    """``max(log(E_SR / E_HR), 0)`` with `E` = :func:`lr_pitch_power`; HR is a constant.

    The log keeps the pull of a pattern 1000x HR's as strong as that of one 2x HR's (the
    ratio's gradient would swamp the content loss' in Adam's step-size statistics)."""
    e_sr = lr_pitch_power(sr, scale) + eps
    return torch.relu(torch.log(e_sr / (lr_pitch_power(hr.detach(), scale) + eps)))


def lr_pitch_penalty(
    sr: torch.Tensor, hr: torch.Tensor, scale: int, eps: float = 1e-12
) -> torch.Tensor:
    """LR-pitch energy of SR in excess of HR's, over the batch and over its mean image:
    ``max(log(E(SR) / E(HR)), 0) + max(log(E(mean SR) / E(mean HR)), 0)``.

    An L1-trained upscaler from grid-sampled LR predicts the pixels at the LR-cell centres
    better than those at the corners, and its conditional median is biased where it is
    unsure, so its output carries a faint pattern locked to the LR grid (a dot grid, see
    docs/results.md, "SRGAN adversarial phase"). `E` is :func:`lr_pitch_power`. The first term (power
    averaged over the batch ``(N, C, H, W)``) sees a strong pattern even where its sign
    follows the image content (a sub-pixel conv's checkerboard). The second (the power of
    the batch's mean image) sees a weak one of the same sign in every patch: patches drawn
    on the LR grid share it, while content and noise average out, so 16 patches of 64 px
    see it as a 256 px image does; on single patches it is below HR's noise floor there.
    0 for SR with no more power there than HR (no pull on a model without a pattern).
    """
    if sr.shape != hr.shape:
        raise ValueError(f"lr_pitch_penalty: sr {tuple(sr.shape)} != hr {tuple(hr.shape)}")
    return _excess(sr, hr, scale, eps) + _excess(
        sr.mean(dim=0, keepdim=True), hr.mean(dim=0, keepdim=True), scale, eps
    )
