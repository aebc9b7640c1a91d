"""Tests of the shoppers networks and of their ONNX export."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

import gan.shoppers
from export.onnx import export_onnx, onnx_io_signature, validate_onnx
from gan.common import count_parameters, latent
from gan.shoppers.model import Critic, Detector, Generator, ModelConfig
from gan.shoppers.train import TrainConfig

SPANS = ((0, 1, "tanh"), (1, 4, "softmax"), (4, 6, "softmax"), (6, 7, "tanh"), (7, 9, "softmax"))
CFG = ModelConfig(nz=8, cond_dim=5, output_dim=9, spans=SPANS, gen_dims=(16, 16),
                  critic_dims=(16, 16), det_dims=(16,), pac=4)  # fmt: skip


def inputs(b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, CFG.z_dim, generator=g), torch.rand(b, CFG.cond_dim, generator=g)


def test_generator_outputs_valid_encoded_rows():
    torch.manual_seed(0)
    net = Generator(CFG).eval()
    assert CFG.gumbel_dim == 7 and CFG.z_dim == 15
    z, cond = inputs(32)
    x = net(z, cond)
    assert x.shape == (32, 9)
    for s, e, act in SPANS:
        block = x[:, s:e]
        if act == "tanh":
            assert block.abs().max() <= 1
        else:
            torch.testing.assert_close(block.sum(1), torch.ones(32))
    torch.testing.assert_close(net(z, cond), x, rtol=0, atol=0)  # deterministic in eval


def test_one_hot_argmax_is_a_gumbel_max_draw():
    """The decoder's argmax of a block is a sample of softmax(logits), as in training."""
    torch.manual_seed(0)
    net = Generator(CFG).eval()
    z, cond = inputs(4000, seed=1)
    z[:, : CFG.nz] = z[0, : CFG.nz]  # one body input: only the Gumbel part of z varies
    cond[:] = cond[0]
    with torch.no_grad():
        x, logits = net(z, cond), net.logits(z, cond)
    probs = torch.softmax(logits[0, 1:4], 0)
    freq = torch.bincount(x[:, 1:4].argmax(1), minlength=3) / 4000
    torch.testing.assert_close(freq, probs, atol=0.03, rtol=0)


def test_critic_packs_rows_and_penalises_gradients():
    torch.manual_seed(0)
    critic = Critic(CFG)
    x, cond = torch.rand(12, 9), torch.rand(12, 5)
    assert critic(x, cond).shape == (3, 1)  # 12 rows / pac 4
    gp = critic.gradient_penalty(x, torch.rand(12, 9), cond, torch.Generator().manual_seed(0))
    assert gp.ndim == 0 and torch.isfinite(gp) and gp >= 0
    gp.backward()
    assert critic.row[0].weight.grad is not None


def test_detector_scores_one_row_at_a_time():
    torch.manual_seed(0)
    det = Detector(CFG).eval()
    x = torch.rand(5, 9)
    out = det(x)
    assert out.shape == (5, 1)
    torch.testing.assert_close(det(x[2:3]), out[2:3])


def test_model_config_checks_spans():
    with pytest.raises(ValueError, match="spans must tile"):
        ModelConfig(nz=8, cond_dim=5, output_dim=10, spans=SPANS)
    with pytest.raises(ValueError, match="spans must tile"):
        ModelConfig(nz=8, cond_dim=5, output_dim=9, spans=((0, 9, "relu"),))


def test_default_sizes_are_ctgan_sized():
    # The real table encodes to ~170 columns with a 66-wide conditional vector.
    spans = ((0, 1, "tanh"), (1, 171, "softmax"))
    mcfg = ModelConfig(nz=TrainConfig().nz, cond_dim=66, output_dim=171, spans=spans)
    assert 200_000 < count_parameters(Generator(mcfg)) < 400_000
    assert count_parameters(Detector(mcfg)) < 100_000


@pytest.fixture(scope="module")
def dry_ckpt(tmp_path_factory):
    cfg = TrainConfig(batch_size=20, pac=10, nz=8, gen_width=16, gen_depth=1, critic_width=16,
                      num_threads=1)  # fmt: skip
    out = tmp_path_factory.mktemp("dry")
    return gan.shoppers.train(cfg, out, dry_run=True, progress=False)


def test_export_parity(dry_ckpt, tmp_path):
    ex = gan.shoppers.exportables(dry_ckpt)
    g, d = ex["generator"], ex["discriminator"]
    assert (g.input_names, g.output_names) == (("z", "cond"), ("x",))
    assert (d.input_names, d.output_names) == (("x",), ("logit",))
    tf = gan.shoppers.load_transformer(dry_ckpt)
    z_dim = gan.shoppers.describe(dry_ckpt)["z_dim"]
    paths = {}
    for role, e in ex.items():
        paths[role] = export_onnx(e, tmp_path / f"{role}.onnx")
        report = validate_onnx(e, paths[role], batch_sizes=(1, 7, 64))
        assert report.to_dict()
    sig = onnx_io_signature(paths["generator"])
    assert [(i["name"], i["shape"]) for i in sig["inputs"]] == [
        ("z", [-1, z_dim]), ("cond", [-1, tf.cond_dim]),
    ]  # fmt: skip
    assert [(o["name"], o["shape"]) for o in sig["outputs"]] == [("x", [-1, tf.output_dim])]
    sig = onnx_io_signature(paths["discriminator"])
    assert [(o["name"], o["shape"]) for o in sig["outputs"]] == [("logit", [-1, 1])]
    # What the service does: ONNX generator + numpy decoding gives sample()'s rows.
    conditions = {"Revenue": True, "VisitorType": "New_Visitor"}
    idx = {c: tf.category_index(c, v) for c, v in conditions.items()}
    session = ort.InferenceSession(str(paths["generator"]), providers=["CPUExecutionProvider"])
    (x,) = session.run(None, {"z": latent(50, z_dim, 3), "cond": tf.cond_vector(idx, 50)})
    rows = tf.decode(x)
    tf.apply_conditions(rows, idx)
    expected = gan.shoppers.sample(dry_ckpt, 50, seed=3, conditions=conditions)
    for name, values in expected.items():
        if values.dtype.kind == "f":
            np.testing.assert_allclose(rows[name], values, rtol=1e-3, atol=1e-3, err_msg=name)
        else:
            assert np.mean(rows[name] == values) >= 0.98, name  # argmax ties may flip


def test_without_gumbel_noise_z_is_the_body_latent():
    cfg = ModelConfig(nz=8, cond_dim=5, output_dim=9, spans=SPANS, gen_dims=(16,), gumbel=0.0)
    assert cfg.z_dim == 8
    torch.manual_seed(0)
    net = Generator(cfg).eval()
    z, cond = torch.randn(6, 8), torch.rand(6, 5)
    with torch.no_grad():
        x, logits = net(z, cond), net.logits(z, cond)
    torch.testing.assert_close(x[:, 1:4], torch.softmax(logits[:, 1:4] / 0.2, 1))
