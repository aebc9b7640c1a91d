"""User-facing API of the reviews family: score reviews as deceptive, generate synthetic ones.

Both models are text in, text out on every protocol: the family's `oip_adapter` puts the word
tokenizer (``tokenizer.json``, `ecomgan.text`) and, for the generator, the numpy sampling loop
around the ONNX graphs, so OIP clients send and receive ``BYTES`` tensors:

- ``reviews-discriminator``: ``text`` BYTES [-1] -> ``p_deceptive`` FP32, ``deceptive`` BOOL
  (at the calibrated threshold) and ``logit`` FP32, each [-1];
- ``reviews-generator``: ``polarity`` BYTES [-1] (``positive``/``negative``), ``seed`` INT64
  [-1] and ``max_tokens`` INT64 [-1] -> ``text`` BYTES [-1] and ``synthetic`` BOOL [-1] (always
  true: every generated review is labelled synthetic).

The models derive from the Deceptive Opinion Spam corpus: CC BY-NC-SA 3.0 (non-commercial).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
from pydantic import Field
from starlette.responses import JSONResponse

from ecomgan.calibration import apply as apply_calibration
from ecomgan.contract import FamilyAPI, OIPAdapter, Run
from ecomgan.families import get_family
from ecomgan.text import WordTokenizer, normalise, sample_tokens
from serving.errors import InvalidInput, answer

FAMILY = get_family("reviews")
TOKENIZER_FILE = "tokenizer.json"
POLARITIES = ("negative", "positive")  # index = the generator's polarity input
MAX_TEXT_CHARS = 5000  # longer texts are refused; the detector reads the first 400 tokens
MAX_TEXTS = 64  # texts per /reviews/score request
MAX_COUNT = 64  # reviews per /reviews/generate request
MAX_GEN_TOKENS = 300
DEFAULT_GEN_TOKENS = 160
TEMPERATURE, TOP_P = 0.9, 0.9  # the sampling settings of the API (and of `generate` in training)
SYNTHETIC_HEADER = "X-Ecomgan-Synthetic"
EXAMPLE_SCORE = {"texts": ["The staff were friendly and the room was spotless. We will be back!"]}
EXAMPLE_GENERATE = {"polarity": "positive", "count": 2, "seed": 7, "max_tokens": 120}


def load_tokenizer(artifacts: Mapping[str, Any]) -> WordTokenizer:
    """The tokenizer stored beside the models."""
    with open(artifacts[TOKENIZER_FILE]) as f:
        return WordTokenizer.from_dict(json.load(f))


def check_texts(texts: Any, limit: int) -> list[str]:
    """Texts to score: 1..``limit`` non-blank strings of at most `MAX_TEXT_CHARS` characters.

    Raises:
        ValueError: Naming the first text that breaks a rule and what is allowed.
    """
    if not isinstance(texts, list | tuple | np.ndarray) or not 1 <= len(texts) <= limit:
        raise ValueError(f"give 1..{limit} texts per request")
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"text {i} must be a string, got {type(t).__name__}")
        if not normalise(t):
            raise ValueError(f"text {i} is empty; give the review's words")
        if len(t) > MAX_TEXT_CHARS:
            raise ValueError(f"text {i} has {len(t)} characters; at most {MAX_TEXT_CHARS}")
        out.append(t)
    return out


def discriminator_call(tok: WordTokenizer, calibration: Mapping[str, Any]):
    """``OIPAdapter.call`` of the detector: texts -> calibrated scores."""

    def call(inputs: dict[str, np.ndarray], run: Run) -> dict[str, np.ndarray]:
        texts = check_texts(list(inputs["text"]), len(inputs["text"]))
        feed = {"ids": tok.encode_batch(texts), "subwords": tok.subword_batch(texts)}
        logit = run(feed)["logit"].reshape(-1)
        p, flagged = apply_calibration(calibration, logit)
        return {"p_deceptive": p.astype(np.float32), "deceptive": flagged,
                "logit": logit.astype(np.float32)}  # fmt: skip

    return call


def generator_call(tok: WordTokenizer, hidden_size: int):
    """``OIPAdapter.call`` of the generator: (polarity, seed, max_tokens) -> synthetic texts."""

    def call(inputs: dict[str, np.ndarray], run: Run) -> dict[str, np.ndarray]:
        pols = [str(p) for p in inputs["polarity"].tolist()]
        unknown = sorted(set(pols) - set(POLARITIES))
        if unknown:
            raise ValueError(f"unknown polarity {unknown}; use 'positive' or 'negative'")
        seeds, lengths = inputs["seed"].astype(np.int64), inputs["max_tokens"].astype(np.int64)
        if (seeds < 0).any():
            raise ValueError("seed must be 0..2**63-1")
        if lengths.min() < 1 or lengths.max() > MAX_GEN_TOKENS:
            raise ValueError(f"max_tokens must be 1..{MAX_GEN_TOKENS}")
        pol = np.array([POLARITIES.index(p) for p in pols], dtype=np.int64)
        ids = sample_tokens(run, hidden_size, pol, seeds, max_tokens=int(lengths.max()),
                            temperature=TEMPERATURE, top_p=TOP_P)  # fmt: skip
        texts = [tok.decode(r[:n]) for r, n in zip(ids, lengths.tolist(), strict=True)]
        return {"text": np.array(texts, dtype=object), "synthetic": np.ones(len(texts), bool)}

    return call


class ReviewsAPI(FamilyAPI):
    """Mixed into the entry service; needs `self.gateway` (see `EntryBase`)."""

    examples = {"reviews_score": EXAMPLE_SCORE, "reviews_generate": EXAMPLE_GENERATE}

    @staticmethod
    def oip_adapter(role: str, metadata: dict, artifacts: Mapping[str, str]) -> OIPAdapter:
        """Text tensors on every protocol (see the module docstring)."""
        tok = load_tokenizer(artifacts)
        if role == "discriminator":
            return OIPAdapter(
                inputs=({"name": "text", "datatype": "BYTES", "shape": [-1]},),
                outputs=tuple({"name": n, "datatype": d, "shape": [-1]} for n, d in
                              (("p_deceptive", "FP32"), ("deceptive", "BOOL"),
                               ("logit", "FP32"))),  # fmt: skip
                call=discriminator_call(tok, metadata["calibration"]),
            )
        hidden = int(metadata["io"]["inputs"][0]["shape"][1])
        return OIPAdapter(
            inputs=tuple({"name": n, "datatype": d, "shape": [-1]} for n, d in
                         (("polarity", "BYTES"), ("seed", "INT64"), ("max_tokens", "INT64"))),
            outputs=({"name": "text", "datatype": "BYTES", "shape": [-1]},
                     {"name": "synthetic", "datatype": "BOOL", "shape": [-1]}),
            call=generator_call(tok, hidden),
        )  # fmt: skip

    @staticmethod
    def write_samples(
        run, nz: int, artifacts: dict[str, Path], out: Path, *, count: int, seed: int,
        category: str | None, conditions: dict[str, str],
    ) -> str:  # fmt: skip
        """`ecomgan sample`: JSON lines ``{"polarity", "seed", "text", "synthetic": true}``, the
        reviews `/reviews/generate` returns for the same polarity and seed (``--condition
        polarity=negative``; default positive)."""
        if category is not None:
            raise InvalidInput("--category applies to image families; use --condition polarity=")
        conditions = dict(conditions)
        polarity = conditions.pop("polarity", "positive")
        if conditions:
            raise InvalidInput(f"the only condition is polarity; got {sorted(conditions)}")
        call = generator_call(load_tokenizer(artifacts), nz)
        try:
            texts = call(generator_inputs(polarity, count, seed, DEFAULT_GEN_TOKENS), run)["text"]
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        out = out if out.suffix else out.with_suffix(".jsonl")
        rows = [json.dumps({"polarity": polarity, "seed": seed + i, "text": t, "synthetic": True})
                for i, t in enumerate(texts.tolist())]  # fmt: skip
        out.write_text("\n".join(rows) + "\n")
        return f"wrote {count} synthetic reviews to {out}"

    async def __score(self, texts: Any) -> dict:
        try:
            texts = check_texts(texts, MAX_TEXTS)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        served = self.gateway.model(FAMILY.model_name("discriminator"))
        out = await self.gateway.infer(served.name, {"text": np.array(texts, dtype=object)})
        cal = served.metadata["calibration"]
        return {
            "threshold": cal["threshold"],
            "target_fpr": cal["target_fpr"],
            "results": [
                {"p_deceptive": float(p), "label": "deceptive" if d else "truthful",
                 "logit": float(lg)}
                for p, d, lg in zip(out["p_deceptive"], out["deceptive"], out["logit"],
                                    strict=True)
            ],  # fmt: skip
        }

    async def __generate(self, polarity: Any, count: Any, seed: Any, max_tokens: Any) -> Any:
        if polarity not in POLARITIES:
            raise InvalidInput(f"polarity must be 'positive' or 'negative', got {polarity!r}")
        if not 1 <= count <= MAX_COUNT:
            raise InvalidInput(f"count must be 1..{MAX_COUNT}, got {count}")
        if not 1 <= max_tokens <= MAX_GEN_TOKENS:
            raise InvalidInput(f"max_tokens must be 1..{MAX_GEN_TOKENS}, got {max_tokens}")
        if seed is None:
            seed = secrets.randbelow(2**31)
        elif not 0 <= seed < 2**63 - MAX_COUNT:
            raise InvalidInput(f"seed must be 0..2**63-{MAX_COUNT + 1}, got {seed}")
        inputs = generator_inputs(polarity, count, seed, max_tokens)
        out = await self.gateway.infer(FAMILY.model_name("generator"), inputs)
        body = {
            "seed": seed,
            "polarity": polarity,
            "synthetic": True,
            "reviews": [{"text": t, "synthetic": bool(s)}
                        for t, s in zip(out["text"].tolist(), out["synthetic"], strict=True)],
        }  # fmt: skip
        return JSONResponse(body, headers={SYNTHETIC_HEADER: "true"})

    @bentoml.api(route="/reviews/score")
    async def reviews_score(
        self,
        texts: Annotated[
            list[str],
            Field(description=f"1..{MAX_TEXTS} reviews, each 1..{MAX_TEXT_CHARS} characters",
                  examples=[EXAMPLE_SCORE["texts"]]),
        ],
    ) -> dict:  # fmt: skip
        """Score reviews: probability each is deceptive (written to order, not from a stay), and
        a label at the calibrated threshold (1% of held-out truthful reviews flagged)."""
        return await answer(self.__score(texts))

    @bentoml.api(route="/reviews/generate")
    async def reviews_generate(
        self,
        polarity: Annotated[str, Field(description="'positive' or 'negative'",
                                       examples=[EXAMPLE_GENERATE["polarity"]])],
        count: Annotated[int, Field(description=f"reviews, 1..{MAX_COUNT}",
                                    examples=[EXAMPLE_GENERATE["count"]])] = 1,
        seed: Annotated[int | None, Field(description="omitted or null: a random seed "
                                          "(returned); review i uses seed + i",
                                          examples=[EXAMPLE_GENERATE["seed"]])] = None,
        max_tokens: Annotated[int, Field(description=f"longest review in words and "
                                         f"punctuation, 1..{MAX_GEN_TOKENS}",
                                         examples=[EXAMPLE_GENERATE["max_tokens"]])
                              ] = DEFAULT_GEN_TOKENS,
    ) -> dict:  # fmt: skip
        """Generate synthetic hotel reviews of one polarity; same seed -> same texts. Every
        review is labelled ``"synthetic": true`` (and the response has ``X-Ecomgan-Synthetic:
        true``). Trained on CC BY-NC-SA 3.0 data: non-commercial use only."""
        return await answer(self.__generate(polarity, count, seed, max_tokens))


def generator_inputs(polarity: str, count: int, seed: int, max_tokens: int
                     ) -> dict[str, np.ndarray]:  # fmt: skip
    """The generator's OIP inputs for ``count`` reviews; review ``i`` uses ``seed + i``."""
    return {
        "polarity": np.array([polarity] * count, dtype=object),
        "seed": np.arange(seed, seed + count, dtype=np.int64),
        "max_tokens": np.full(count, max_tokens, dtype=np.int64),
    }
