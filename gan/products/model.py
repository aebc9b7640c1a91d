"""Class-conditional DCGAN-family networks for 28x28 greyscale product images.

The generator is a DCGAN-style generator (Radford et al. 2016) whose input is the
latent vector concatenated with a learned label embedding, upsampling 7 -> 14 -> 28.
The discriminator is a small strided CNN with spectral normalisation on every layer
(Miyato et al. 2018) and a projection head for the label (Miyato & Koyama 2018):

    D(x, y) = linear(h(x)) + <embed(y), h(x)>

Both networks use only ops that export to plain ONNX (Gemm, Gather, Resize, Conv,
BatchNormalization, Relu, LeakyRelu, ReduceSum, Tanh) and have no data-dependent
control flow, so the batch dimension can stay dynamic in the exported graphs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

IMAGE_SIZE = 28
CHANNELS = 1


@dataclass(frozen=True)
class ModelConfig:
    """Shape of both networks; saved in the checkpoint so they can be rebuilt from it.

    Attributes:
        nz: Size of the latent vector z.
        n_classes: Number of product categories.
        ngf: Generator width (channels at 14x14; 2*ngf at 7x7, ngf/2 at 28x28).
        ndf: Discriminator width (channels at 14x14; 2*ndf at 7x7).
        embed_dim: Size of the generator's label embedding.
    """

    nz: int = 64
    n_classes: int = 10
    ngf: int = 48
    ndf: int = 48
    embed_dim: int = 32

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class Generator(nn.Module):
    """(z, label) -> image in [-1, 1]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = 2 * cfg.ngf
        self.embed = nn.Embedding(cfg.n_classes, cfg.embed_dim)
        # No bias: the BatchNorm right after it has its own shift.
        self.project = nn.Linear(cfg.nz + cfg.embed_dim, c * 7 * 7, bias=False)
        # Nearest upsampling + 3x3 conv rather than strided ConvTranspose: no
        # checkerboard artefacts (Odena et al. 2016), which showed in pilot runs.
        self.main = nn.Sequential(
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c, cfg.ngf, 3, 1, 1, bias=False),
            # (B, ngf, 14, 14)
            nn.BatchNorm2d(cfg.ngf),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(cfg.ngf, cfg.ngf // 2, 3, 1, 1, bias=False),
            # (B, ngf/2, 28, 28)
            nn.BatchNorm2d(cfg.ngf // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(cfg.ngf // 2, CHANNELS, 3, 1, 1),
            # (B, 1, 28, 28)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Generate images.

        Args:
            z: Latent vectors, float32 (B, nz).
            label: Category indices, int64 (B,).

        Returns:
            Images, float32 (B, 1, 28, 28) in [-1, 1].
        """
        h = torch.cat([z, self.embed(label)], dim=1)  # (B, nz + embed_dim)
        h = self.project(h).view(-1, 2 * self.cfg.ngf, 7, 7)  # (B, 2*ngf, 7, 7)
        return self.main(h)


class Discriminator(nn.Module):
    """(image, label) -> realness logit, with spectral norm and a projection head."""

    def __init__(self, cfg: ModelConfig, spectral: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        c = 2 * cfg.ndf
        sn = spectral_norm if spectral else (lambda module: module)
        self.main = nn.Sequential(
            sn(nn.Conv2d(CHANNELS, cfg.ndf, 4, 2, 1)),
            # (B, ndf, 14, 14)
            nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(cfg.ndf, c, 4, 2, 1)),
            # (B, 2*ndf, 7, 7)
            nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(c, c, 3, 1, 1)),
            # (B, 2*ndf, 7, 7)
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.linear = sn(nn.Linear(c, 1))
        self.embed = sn(nn.Embedding(cfg.n_classes, c))

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Score images.

        Args:
            image: Images, float32 (B, 1, 28, 28) in [-1, 1].
            label: Category indices, int64 (B,).

        Returns:
            Logits, float32 (B,): high means "a real image of this category".
        """
        h = self.main(image).sum(dim=(2, 3))  # (B, 2*ndf), sum pooling as in SN-GAN
        projection = (self.embed(label) * h).sum(dim=1)  # (B,)
        return self.linear(h).squeeze(1) + projection  # (B,)


@torch.no_grad()
def bake_spectral_norm(disc: Discriminator) -> Discriminator:
    """Return an eval-mode copy of ``disc`` with its spectral norm folded into plain weights.

    The copy computes what ``disc.eval()`` computes (weights divided by the sigma that the
    stored power-iteration vectors give) without the parametrization machinery, so ONNX
    export sees plain Conv/Gemm/Gather weights. It is a new module filled with copied
    weights, not ``deepcopy`` + ``remove_parametrizations``: a deep copy shares the
    dynamically created ``Parametrized*`` classes with the original, and removing the
    parametrization from the copy would break the original.
    """
    baked = Discriminator(disc.cfg, spectral=False).eval()
    was_training = disc.training
    disc.eval()  # in train mode, reading .weight would run a power iteration
    for name, dst in baked.named_modules():
        if isinstance(dst, nn.Conv2d | nn.Linear | nn.Embedding):
            src = disc.get_submodule(name)
            dst.weight.copy_(src.weight)
            if getattr(dst, "bias", None) is not None:
                dst.bias.copy_(src.bias)
    disc.train(was_training)
    return baked
