"""Tests of gan.products.model: shapes, sizes, conditioning, spectral-norm baking."""

from __future__ import annotations

import torch
from torch.nn.utils import parametrize

from gan.common import count_parameters
from gan.products.model import Discriminator, Generator, ModelConfig, bake_spectral_norm

SMALL = ModelConfig(nz=8, ngf=8, ndf=8, embed_dim=4)


def test_generator_shape_and_range():
    torch.manual_seed(0)
    net = Generator(SMALL).eval()
    out = net(torch.randn(5, 8), torch.arange(5))
    assert out.shape == (5, 1, 28, 28) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1


def test_discriminator_returns_one_logit_per_image():
    torch.manual_seed(0)
    net = Discriminator(SMALL)
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    out = net(x, torch.arange(6))
    assert out.shape == (6,) and out.dtype == torch.float32
    assert out.requires_grad  # the training graph goes through it


def test_discriminator_uses_the_label():
    torch.manual_seed(0)
    net = Discriminator(SMALL).eval()
    x = torch.rand(1, 1, 28, 28).repeat(10, 1, 1, 1)
    assert torch.unique(net(x, torch.arange(10))).numel() == 10


def test_default_sizes_fit_cpu_training():
    cfg = ModelConfig()
    assert 0.5e6 <= count_parameters(Generator(cfg)) <= 2e6
    assert count_parameters(Discriminator(cfg)) < count_parameters(Generator(cfg))


def test_model_config_round_trip():
    assert ModelConfig.from_dict(SMALL.to_dict()) == SMALL


def test_bake_spectral_norm_keeps_outputs_and_drops_parametrizations():
    torch.manual_seed(0)
    net = Discriminator(SMALL)
    x, y = torch.rand(4, 1, 28, 28) * 2 - 1, torch.tensor([0, 3, 5, 9])
    for _ in range(3):  # a few power iterations, as in training
        net(x, y)
    baked = bake_spectral_norm(net)
    assert not any(parametrize.is_parametrized(m) for m in baked.modules())
    assert not baked.training
    with torch.no_grad():
        torch.testing.assert_close(baked(x, y), net.eval()(x, y))
    # The original keeps working and training (a deepcopy + remove_parametrizations
    # would have broken it: the copy shares its Parametrized* classes).
    assert parametrize.is_parametrized(net.main[0])
    net.train()(x, y).sum().backward()
    with torch.no_grad():
        baked.main[0].weight.zero_()
    assert net.main[0].weight.abs().sum() > 0
