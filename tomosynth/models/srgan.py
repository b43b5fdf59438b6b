"""SRGAN family for bone micro-CT (Ledig et al. 2017, as adapted in the bone SRGAN report).

Images are ``(N, 1, H, W)`` float32 in ``[0, 1]``: the generators end in ``(tanh + 1) / 2``.
A generator of scale ``r`` maps ``(N, C, h, w)`` to ``(N, C, r*h, r*w)``.

- :class:`Generator`: wide conv + PReLU, residual blocks (optionally with squeeze-and-
  excitation), conv-BN with a global skip, ``log2(r)`` sub-pixel x2 blocks, wide conv.
- :class:`ProgressiveGenerator`: one stage of residual blocks + x2 block per octave; every
  stage has its own output head so the intermediate x2, x4, ... images can be supervised.
- :class:`StackedGenerator`: ``G2(G1(x))``, two ordinary generators (report section 4.5).
- :class:`Discriminator`: conv-BN-LeakyReLU stack, 64 -> 512 features; a final conv giving a
  map of patch scores (default, the report's variant) or the classic dense head. No sigmoid:
  the least-squares adversarial loss works on raw scores.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from tomosynth.checkpoint import load_checkpoint
from tomosynth.errors import ConfigError, DataError

SCALES = (2, 4, 8)
SE_MODES = ("none", "all", "first_half")
KINDS = ("srgan", "progressive", "stacked")
SKIPS = ("none", "bicubic")
UPSAMPLES = ("pixelshuffle", "resize")


def _check_scale(scale: int, key: str = "scale") -> int:
    if int(scale) not in SCALES:
        raise ConfigError(f"srgan {key}: must be one of {SCALES}, got {scale}")
    return int(scale)


class SEBlock(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): rescale each channel by a learned gate in (0, 1).

    ``s = sigmoid(W2 relu(W1 mean_hw(u)))``, ``out_c = s_c * u_c``; ``W1`` reduces the
    channels by `reduction` (at least 1 hidden unit).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.excite = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        gate = self.excite(self.squeeze(x).reshape(n, c))
        return x * gate.reshape(n, c, 1, 1)


class ResidualBlock(nn.Module):
    """conv3-BN-PReLU-conv3-BN (+ SE) with an identity skip."""

    def __init__(self, channels: int, se: bool = False, se_reduction: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
        ]
        if se:
            layers.append(SEBlock(channels, se_reduction))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@torch.no_grad()
def icnr_(conv: nn.Conv2d, factor: int = 2) -> nn.Conv2d:
    """ICNR initialisation (Aitken et al. 2017) of a conv feeding ``PixelShuffle(factor)``.

    The ``factor**2`` output channels that become the sub-pixels of one feature get the same
    kernel (a draw of PyTorch's default init for a conv with ``C / factor**2`` outputs) and
    zero bias, so at initialisation the sub-pixel conv is a conv followed by nearest-neighbour
    upsampling: every output phase is alike and there is no checkerboard at the LR pitch to
    unlearn.
    """
    out_c, in_c, kh, kw = conv.weight.shape
    if out_c % factor**2:
        raise ValueError(f"icnr_: {out_c} output channels are not a multiple of {factor**2}")
    base = torch.empty(out_c // factor**2, in_c, kh, kw, dtype=conv.weight.dtype)
    # the scale of nn.Conv2d.reset_parameters, so the block's output is as large as before
    nn.init.kaiming_uniform_(base, a=math.sqrt(5))
    # PixelShuffle takes channel c * f^2 + k to sub-pixel k of feature c
    conv.weight.copy_(base.repeat_interleave(factor**2, dim=0))
    if conv.bias is not None:
        conv.bias.zero_()
    return conv


class UpsampleBlock(nn.Module):
    """x2 upscaling, then PReLU.

    ``pixelshuffle``: sub-pixel conv (Shi et al. 2016), conv3 to 4C channels then
    ``PixelShuffle(2)``, ICNR-initialised. ``resize``: nearest-neighbour x2 then conv3
    (resize-convolution, Odena et al. 2016), whose sub-pixels share one kernel. Neither
    stops a trained model from painting a pattern at the LR pitch where the content loss
    favours one (see :func:`tomosynth.losses.lr_pitch_penalty`).
    """

    def __init__(self, channels: int, mode: str = "pixelshuffle") -> None:
        super().__init__()
        if mode == "pixelshuffle":
            self.conv = icnr_(nn.Conv2d(channels, channels * 4, 3, padding=1))
            self.shuffle: nn.Module = nn.PixelShuffle(2)
        else:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)
            self.shuffle = nn.Upsample(scale_factor=2, mode="nearest")
        self.mode = mode
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "pixelshuffle":
            return self.act(self.shuffle(self.conv(x)))
        return self.act(self.conv(self.shuffle(x)))


class _ClampST(torch.autograd.Function):
    """Clamp to [0, 1] forward, identity backward (straight-through)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def clamp_unit_st(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] with a straight-through gradient.

    The output is the clamped image; the gradient passes as if there were no clamp, so a
    pixel pushed out of range still gets the content loss' pull back (a plain clamp gives it
    zero gradient: once the output saturates, nothing can bring it back).
    """
    return _ClampST.apply(x)


@dataclass
class GeneratorConfig:
    """Generator hyper-parameters.

    Attributes
    ----------
    scale : int
        Upscaling factor r in {2, 4, 8} (for ``stacked``: the product of `stack_scales`).
    kind : str
        ``srgan``, ``progressive`` or ``stacked``.
    channels : int
        Feature maps C (report: 64).
    n_blocks : int
        Residual blocks (report: 16); for ``progressive`` the blocks of each stage.
    se : str
        Squeeze-and-excitation in ``all`` residual blocks, the ``first_half`` or ``none``.
    se_reduction : int
        SE channel reduction (Hu et al.: 16).
    kernel : int
        Width of the first and last convolutions (report: 9).
    in_channels : int
        Image channels (1 for micro-CT).
    stack_scales : list of int
        For ``stacked``: scales of G1 then G2 (report: [2, 4]).
    skip : str
        ``none`` (report): the output is the network's alone. ``bicubic``: the network
        predicts a correction added to a bicubic upscaling of its input (global residual
        learning, Kim et al. 2016, VDSR), so training starts at bicubic quality; it helps
        short CPU trainings (config/study.yaml). Only for ``kind: srgan``. The sum is
        clamped to [0, 1] with a straight-through gradient (:func:`clamp_unit_st`).
    upsample : str
        ``pixelshuffle`` (report; ICNR-initialised sub-pixel conv) or ``resize``
        (nearest-neighbour x2 + conv), see :class:`UpsampleBlock`.
    """

    scale: int = 4
    kind: str = "srgan"
    channels: int = 64
    n_blocks: int = 16
    se: str = "none"
    se_reduction: int = 16
    kernel: int = 9
    in_channels: int = 1
    stack_scales: list[int] = field(default_factory=lambda: [2, 4])
    skip: str = "none"
    upsample: str = "pixelshuffle"

    def __post_init__(self) -> None:
        _check_scale(self.scale)
        if self.kind not in KINDS:
            raise ConfigError(f"srgan generator.kind: must be one of {KINDS}, got {self.kind!r}")
        if self.se not in SE_MODES:
            raise ConfigError(f"srgan generator.se: must be one of {SE_MODES}, got {self.se!r}")
        if self.channels < 1 or self.n_blocks < 0 or self.kernel % 2 == 0:
            raise ConfigError(
                "srgan generator: channels >= 1, n_blocks >= 0 and an odd kernel are required, "
                f"got channels={self.channels}, n_blocks={self.n_blocks}, kernel={self.kernel}"
            )
        if self.skip not in SKIPS:
            raise ConfigError(f"srgan generator.skip: must be one of {SKIPS}, got {self.skip!r}")
        if self.upsample not in UPSAMPLES:
            raise ConfigError(
                f"srgan generator.upsample: must be one of {UPSAMPLES}, got {self.upsample!r}"
            )
        if self.skip != "none" and self.kind != "srgan":
            raise ConfigError(
                f"srgan generator.skip: {self.skip!r} is for kind 'srgan', not {self.kind!r}"
            )
        if self.kind == "stacked":
            s1, s2 = (_check_scale(s, "generator.stack_scales") for s in self.stack_scales)
            if s1 * s2 != self.scale:
                raise ConfigError(
                    f"srgan generator.stack_scales {self.stack_scales} multiply to {s1 * s2}, "
                    f"not the scale {self.scale}"
                )


def _residual_trunk(cfg: GeneratorConfig) -> nn.Sequential:
    """Residual blocks with SE where `cfg.se` asks for it."""
    n_se = {"none": 0, "all": cfg.n_blocks, "first_half": cfg.n_blocks // 2}[cfg.se]
    return nn.Sequential(
        *(ResidualBlock(cfg.channels, i < n_se, cfg.se_reduction) for i in range(cfg.n_blocks))
    )


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    """Map to [0, 1] as the report does: (tanh + 1) / 2."""
    return (torch.tanh(x) + 1.0) / 2.0


class Generator(nn.Module):
    """SRGAN generator; ``forward`` maps ``(N, C, h, w)`` in [0, 1] to ``(N, C, r h, r w)`` in [0, 1]."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, k = cfg.channels, cfg.kernel
        self.head = nn.Sequential(nn.Conv2d(cfg.in_channels, c, k, padding=k // 2), nn.PReLU(c))
        self.trunk = _residual_trunk(cfg)
        self.trunk_tail = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
        self.upsample = nn.Sequential(
            *(UpsampleBlock(c, cfg.upsample) for _ in range(int(math.log2(cfg.scale))))
        )
        self.tail = nn.Conv2d(c, cfg.in_channels, k, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        features = head + self.trunk_tail(self.trunk(head))  # global skip
        out = self.tail(self.upsample(features))
        if self.cfg.skip == "bicubic":
            # torch's bicubic (Keys a = -0.75, half-pixel centres, as OpenCV's INTER_CUBIC;
            # borders replicated): part of the network, differentiable, not a baseline
            up = nn.functional.interpolate(
                x, scale_factor=self.cfg.scale, mode="bicubic", align_corners=False
            )
            return clamp_unit_st(up + out)
        return _to_unit(out)


class ProgressiveGenerator(nn.Module):
    """Generator with one stage per octave (report Fig. 11).

    Each stage is `n_blocks` residual blocks, conv-BN with a stage skip and one x2 block; an
    output head (wide conv, (tanh + 1) / 2) per stage gives the intermediate images.
    ``forward`` returns a list ``[x2, x4, ..., x r]`` of images; the last is the SR output.
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, k = cfg.channels, cfg.kernel
        n_stages = int(math.log2(cfg.scale))
        self.head = nn.Sequential(nn.Conv2d(cfg.in_channels, c, k, padding=k // 2), nn.PReLU(c))
        self.trunks = nn.ModuleList(_residual_trunk(cfg) for _ in range(n_stages))
        self.trunk_tails = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)) for _ in range(n_stages)
        )
        self.upsample = nn.ModuleList(UpsampleBlock(c, cfg.upsample) for _ in range(n_stages))
        self.tails = nn.ModuleList(
            nn.Conv2d(c, cfg.in_channels, k, padding=k // 2) for _ in range(n_stages)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.head(x)
        outputs = []
        for trunk, trunk_tail, up, tail in zip(
            self.trunks, self.trunk_tails, self.upsample, self.tails, strict=True
        ):
            features = up(features + trunk_tail(trunk(features)))
            outputs.append(_to_unit(tail(features)))
        return outputs


class StackedGenerator(nn.Module):
    """Two generators in a row, ``G2(G1(x))`` (report section 4.5, "GAN's stack").

    ``forward`` returns ``[G1(x), G2(G1(x))]``: the intermediate and the final image.
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        s1, s2 = cfg.stack_scales
        base = {k: v for k, v in asdict(cfg).items() if k not in ("scale", "kind")}
        self.g1 = Generator(GeneratorConfig(**{**base, "scale": s1, "kind": "srgan"}))
        self.g2 = Generator(GeneratorConfig(**{**base, "scale": s2, "kind": "srgan"}))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        inter = self.g1(x)
        return [inter, self.g2(inter)]


def build_generator(cfg: GeneratorConfig | dict) -> nn.Module:
    """The generator of `cfg.kind` (``srgan``, ``progressive`` or ``stacked``)."""
    if isinstance(cfg, dict):
        cfg = GeneratorConfig(**cfg)
    return {"srgan": Generator, "progressive": ProgressiveGenerator, "stacked": StackedGenerator}[
        cfg.kind
    ](cfg)


def final_output(out: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """The SR image of any generator's output (the last of a list)."""
    return out[-1] if isinstance(out, list) else out


@dataclass
class DiscriminatorConfig:
    """Discriminator hyper-parameters.

    Attributes
    ----------
    head : str
        ``patch`` (final conv -> map of scores, the report's variant) or ``dense``
        (adaptive pooling, dense 1024, LeakyReLU, dense 1: the original SRGAN head).
    base_features, max_features : int
        Features of the first block and the cap (SRGAN: 64 and 512); they double every
        second conv.
    n_layers : int
        Convolutions of the feature stack (SRGAN: 8, strides alternating 1 and 2).
    in_channels : int
        Image channels.
    """

    head: str = "patch"
    base_features: int = 64
    max_features: int = 512
    n_layers: int = 8
    in_channels: int = 1

    def __post_init__(self) -> None:
        if self.head not in ("patch", "dense"):
            raise ConfigError(f"srgan discriminator.head: 'patch' or 'dense', got {self.head!r}")
        if self.base_features < 1 or self.max_features < self.base_features or self.n_layers < 2:
            raise ConfigError(
                "srgan discriminator: need 1 <= base_features <= max_features and n_layers >= 2, "
                f"got {self.base_features}, {self.max_features}, {self.n_layers}"
            )


class Discriminator(nn.Module):
    """SRGAN discriminator: conv-BN-LeakyReLU(0.2) stack, strides 1, 2, 1, 2, ...

    ``forward`` returns raw scores: ``(N, 1, h', w')`` (patch head, one score per receptive
    field) or ``(N, 1)`` (dense head).
    """

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in = cfg.in_channels
        for i in range(cfg.n_layers):
            c_out = min(cfg.base_features * 2 ** (i // 2), cfg.max_features)
            layers.append(nn.Conv2d(c_in, c_out, 3, stride=1 + i % 2, padding=1))
            if i > 0:  # no BN after the first conv (Radford et al.)
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        if cfg.head == "patch":
            self.head = nn.Conv2d(c_in, 1, 3, padding=1)
        else:
            self.head = nn.Sequential(
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(c_in, 1024),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Linear(1024, 1),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_discriminator(cfg: DiscriminatorConfig | dict) -> Discriminator:
    """A :class:`Discriminator` from a config object or dict."""
    if isinstance(cfg, dict):
        cfg = DiscriminatorConfig(**cfg)
    return Discriminator(cfg)


@torch.no_grad()
def super_resolve_stack(
    generator: nn.Module,
    lr: np.ndarray,
    batch_size: int = 8,
    device: torch.device | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Apply a generator slice by slice: LR ``(N, H, W)`` in [0, 1] -> SR ``(N, rH, rW)`` float32.

    The one SRGAN inference path: SR volumes, validation during training and the
    ``upscale`` rule's SRGAN method all call it (eval mode; the training mode is restored).
    """
    from tqdm import tqdm

    device = device or next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    out = []
    starts = range(0, len(lr), batch_size)
    for s in tqdm(starts, desc="super-resolve", unit="batch", disable=not progress):
        batch = torch.from_numpy(np.ascontiguousarray(lr[s : s + batch_size, None])).to(device)
        out.append(final_output(generator(batch))[:, 0].float().cpu().numpy())
    generator.train(was_training)
    return np.concatenate(out).astype(np.float32)


def load_srgan_generator(
    path: str | os.PathLike, device: torch.device | str = "cpu"
) -> tuple[nn.Module, dict]:
    """The generator of a ``best.pt`` (strict load) in eval mode, and the checkpoint's metadata."""
    state = load_checkpoint(path, map_location=device)
    if state is None:
        raise DataError(f"{path}: checkpoint does not exist")
    if state.get("kind") != "srgan_generator":
        raise DataError(f"{path}: not an SRGAN generator checkpoint (kind={state.get('kind')!r})")
    model = build_generator(dict(state["generator_config"])).to(device)
    model.load_state_dict(state["generator"], strict=True)
    model.eval()
    meta = {k: v for k, v in state.items() if k != "generator"}
    return model, meta
