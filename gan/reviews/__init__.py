"""The reviews family: a k+1 fake-review detector trained adversarially and a
polarity-conditioned review generator, on the Deceptive Opinion Spam corpus (CC BY-NC-SA 3.0).

The torch-side family module that ``ecomgan.families`` names. ``train.py`` holds
``TrainConfig`` and ``train``; this file reads a checkpoint back: ``load``, ``generate``,
``exportables``, ``calibration_inputs``, ``describe``, ``artifacts`` (the tokenizer JSON and
the licence note) and the optional hooks ``write_samples`` and ``evaluate_checkpoint``.
``generate`` runs the same numpy sampling loop as the service
(``ecomgan.text.sample_tokens``) on the torch step, so the same seed gives the same text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecomgan.contract import EvaluateRequest
from ecomgan.text import WordTokenizer, sample_tokens
from gan.common import describe_checkpoint, load_checkpoint
from gan.exportable import CalibrationInputs, Exportable
from gan.reviews.data import POLARITIES
from gan.reviews.data import load as load_reviews
from gan.reviews.model import Detector, DetectorExport, Generator, GeneratorStep
from gan.reviews.train import FAMILY, TrainConfig, train

__all__ = [
    "LICENSE_NOTE",
    "TrainConfig",
    "artifacts",
    "calibration_inputs",
    "describe",
    "evaluate_checkpoint",
    "exportables",
    "generate",
    "load",
    "train",
    "write_samples",
]
TOKENIZER_FILE = "tokenizer.json"
LICENSE_FILE = "LICENSE.md"
LICENSE_NOTE = """# Licence of the reviews models

The reviews models (`generator.onnx`, `discriminator.onnx`, `tokenizer.json`) are derived from
the Deceptive Opinion Spam corpus v1.4 (Myle Ott, Yejin Choi, Claire Cardie, Jeffrey T. Hancock,
ACL 2011 and NAACL 2013), which is licensed under Creative Commons
Attribution-NonCommercial-ShareAlike 3.0 (CC BY-NC-SA 3.0,
https://creativecommons.org/licenses/by-nc-sa/3.0/). The models carry its terms: attribute the
corpus, use them for non-commercial purposes only, and share derivatives under the same licence.
This overrides the project's Apache-2.0 licence for these files only.
"""


def _read(checkpoint: Path) -> tuple[dict[str, Any], TrainConfig, WordTokenizer, dict]:
    ckpt = load_checkpoint(checkpoint, FAMILY)
    cfg = TrainConfig.from_dict(ckpt["config"])
    tok = WordTokenizer.from_dict(ckpt["tokenizer"])
    mcfg = cfg.model_config(len(tok))
    nets = {"generator": Generator(mcfg), "discriminator": Detector(mcfg)}
    nets["generator"].load_state_dict(ckpt["generator_ema"])
    nets["discriminator"].load_state_dict(ckpt["detector"])
    for net in nets.values():
        net.eval()
    return ckpt, cfg, tok, nets


def load(checkpoint: Path) -> tuple[TrainConfig, WordTokenizer, dict[str, torch.nn.Module]]:
    """Rebuild a checkpoint's config, tokenizer and networks (eval mode)."""
    _, cfg, tok, nets = _read(checkpoint)
    return cfg, tok, nets


def torch_step(generator: Generator):
    """The generator step as ``ecomgan.text.Step`` (numpy in, numpy out), like the ONNX one."""

    @torch.no_grad()
    def step(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        logits, hidden = generator.step(torch.from_numpy(inputs["token"]),
                                        torch.from_numpy(inputs["hidden"]),
                                        torch.from_numpy(inputs["polarity"]))  # fmt: skip
        return {"logits": logits.numpy(), "hidden_out": hidden.numpy()}

    return step


def generate(checkpoint: Path, polarity: str, count: int, seed: int, *, max_tokens: int = 160,
             temperature: float = 0.9, top_p: float = 0.9) -> list[str]:  # fmt: skip
    """``count`` reviews of one polarity; review ``i`` uses seed ``seed + i`` (as the API)."""
    _, cfg, tok, nets = _read(checkpoint)
    pol = np.full(count, POLARITIES.index(polarity), dtype=np.int64)
    ids = sample_tokens(torch_step(nets["generator"]), cfg.lm_hidden, pol,
                        np.arange(seed, seed + count), max_tokens=max_tokens,
                        temperature=temperature, top_p=top_p)  # fmt: skip
    return [tok.decode(r) for r in ids]


def exportables(checkpoint: Path) -> dict[str, Exportable]:
    """The generator step ``(hidden, token, polarity) -> (logits, hidden_out)`` and the
    detector ``(ids, subwords) -> logit`` (deceptive vs truthful), ready for ONNX."""
    _, cfg, tok, nets = _read(checkpoint)
    n = 4
    hidden = torch.zeros((n, cfg.lm_hidden))
    # The parity check draws integer inputs over the range the examples span.
    token = torch.tensor([0, 2, 5, 19], dtype=torch.long)
    polarity = torch.tensor([0, 1, 0, 1], dtype=torch.long)
    texts = ["The room was clean.", "Awful stay!", "ok", "x"]
    ids = torch.from_numpy(tok.encode_batch(texts))
    sub = torch.from_numpy(tok.subword_batch(texts))
    return {
        "generator": Exportable(GeneratorStep(nets["generator"]), (hidden, token, polarity),
                                ("hidden", "token", "polarity"), ("logits", "hidden_out")),
        "discriminator": Exportable(DetectorExport(nets["discriminator"]), (ids, sub),
                                    ("ids", "subwords"), ("logit",)),
    }  # fmt: skip


def calibration_inputs(checkpoint: Path, n: int, seed: int, data_dir: Path | None = None
                       ) -> CalibrationInputs:  # fmt: skip
    """Detector inputs of held-out reviews: ``((truthful ids, subwords), (deceptive ids,
    subwords))``.

    The reviews of the hotels of the checkpoint's ``holdout_fold`` (never trained on), at most
    ``n`` of each; the threshold is then set at the target false-positive rate on truthful
    reviews.
    """
    _, cfg, tok, _ = _read(checkpoint)
    data = load_reviews(data_dir)
    held = data.subset(data.fold == cfg.holdout_fold) if cfg.holdout_fold >= 0 else data
    rng = np.random.Generator(np.random.PCG64(seed))
    out = []
    for label in (0, 1):
        texts = held.text[held.deceptive == label]
        pick = np.sort(rng.choice(len(texts), size=min(n, len(texts)), replace=False))
        out.append((tok.encode_batch(texts[pick]), tok.subword_batch(texts[pick])))
    return out[0], out[1]


def describe(checkpoint: Path) -> dict[str, Any]:
    """JSON-serialisable facts about a checkpoint, for model-store metadata."""
    ckpt, cfg, tok, nets = _read(checkpoint)
    return {
        **describe_checkpoint(ckpt, cfg, nets),
        "vocab_size": len(tok),
        "max_tokens": tok.max_tokens,
        "subword_buckets": tok.subword_buckets,
        "max_subwords": tok.max_subwords,
        "hidden_size": cfg.lm_hidden,
        "polarities": list(POLARITIES),
        "dataset": "Deceptive Opinion Spam v1.4 (Ott et al. 2011, 2013)",
        "license": "CC BY-NC-SA 3.0 (see LICENSE.md)",
    }


def artifacts(checkpoint: Path) -> dict[str, bytes]:
    """``tokenizer.json`` (what the service encodes and decodes with) and ``LICENSE.md``."""
    doc = load_checkpoint(checkpoint)["tokenizer"]
    WordTokenizer.from_dict(doc)  # refuse to ship a document the service cannot read
    return {TOKENIZER_FILE: (json.dumps(doc) + "\n").encode(),
            LICENSE_FILE: LICENSE_NOTE.encode()}  # fmt: skip


def write_samples(checkpoint: Path, out: Path | None, *, count: int, seed: int,
                  category: str | None = None, conditions: dict[str, str] | None = None
                  ) -> str:  # fmt: skip
    """``ecomgan sample --checkpoint``: JSON lines ``{"polarity", "seed", "text", "synthetic":
    true}``, as ``ecomgan sample --model`` writes them from the exported generator.

    ``--condition polarity=positive|negative`` (default positive).
    """
    if category is not None:
        raise ValueError("--category applies to image families; use --condition polarity=...")
    polarity = _polarity(conditions)
    texts = generate(Path(checkpoint), polarity, count, seed)
    out = Path(out or "samples.jsonl")
    lines = [json.dumps({"polarity": polarity, "seed": seed + i, "text": t, "synthetic": True})
             for i, t in enumerate(texts)]  # fmt: skip
    out.write_text("\n".join(lines) + "\n")
    return f"wrote {count} synthetic reviews to {out}"


def _polarity(conditions: dict[str, str] | None) -> str:
    conditions = dict(conditions or {})
    polarity = conditions.pop("polarity", "positive")
    if conditions or polarity not in POLARITIES:
        raise ValueError(f"the only condition is polarity={'|'.join(POLARITIES)}; got "
                         f"{dict(conditions or {}, polarity=polarity)}")  # fmt: skip
    return polarity


def evaluate_checkpoint(request: EvaluateRequest) -> str:
    """``ecomgan evaluate --family reviews``: ``gan.reviews.evaluate.evaluate``."""
    from gan.reviews.evaluate import evaluate

    extra = [flag for flag, v in (("--compare", request.compare), ("--classifier",
             request.classifier), ("--detector", request.detector)) if v]  # fmt: skip
    if extra:
        raise ValueError(f"{', '.join(extra)} apply to the products family, not reviews")
    evaluate(Path(request.checkpoint), request.out, data_dir=request.data_dir,
             n_samples=request.samples, seed=request.seed, quick=request.quick)  # fmt: skip
    report = (request.out / "report.md").read_text()
    return f"{report}\nreport in {request.out}/ (report.json, report.md)"
