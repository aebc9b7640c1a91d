"""The reviews family, training side: tokenizer, hotel folds, training, export parity,
determinism of generation and a tiny evaluation run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from ecomgan.calibration import apply as apply_calibration
from ecomgan.text import (
    EOS_ID,
    SPECIALS,
    WordTokenizer,
    normalise,
    sample_tokens,
    subword_ids,
    words,
)
from gan.reviews.data import hotel_folds, load
from gan.reviews.textmetrics import BigramChain, CopyIndex, copying, distinct
from tests.conftest import shared_data_dir

TEXTS = [
    "The room was clean, the staff friendly!  We'll be back in (early) May.\n",
    "Don't stay here: a $300 rate for a wi-fi-less room; rude staff. ",
]


@pytest.fixture(scope="module")
def dry_checkpoint(tmp_path_factory) -> Path:
    from gan.reviews.train import TrainConfig, train

    cfg = TrainConfig(steps=3, mle_steps=1, log_every=1, lm_hidden=16, lm_embed=8,
                      gen_tokens=12, bigram_buckets=512, subword_buckets=1024)  # fmt: skip
    return train(cfg, tmp_path_factory.mktemp("reviews"), dry_run=True, progress=False)


def test_normalise_removes_the_trailing_whitespace_leak():
    assert normalise("Great stay. \n") == normalise("Great stay.") == "Great stay."
    assert normalise(" a\t\tb\r\n c ") == "a b c"


def test_tokenizer_round_trip_and_json():
    tok = WordTokenizer.fit(TEXTS * 2, min_count=2, max_tokens=50)
    for text in TEXTS:
        ids = tok.encode(text)
        assert tok.encode(tok.decode(ids)) == ids  # decode then encode gives the same ids
        assert 1 not in ids  # every word was seen twice: no <unk>
    assert tok.decode(tok.encode(TEXTS[1])).startswith("Don't stay here: a $300 rate")
    again = WordTokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again == tok and again.encode(TEXTS[0]) == tok.encode(TEXTS[0])
    assert tok.encode("zebra quantum") == [1, 1]  # unknown words
    batch = tok.encode_batch(TEXTS, length=8)
    assert batch.shape == (2, 8) and batch.dtype == np.int64
    with pytest.raises(ValueError, match="format"):
        WordTokenizer.from_dict({"format": "other", "vocab": list(SPECIALS), "max_tokens": 3})


def test_subwords_are_hashed_distinct_char_ngrams_of_the_words():
    tok = WordTokenizer.fit(TEXTS * 2, min_count=2, max_tokens=50, subword_buckets=4096,
                            max_subwords=64)  # fmt: skip
    # "<ab>": 3-grams <ab, ab>; 4-gram <ab>; each once however often the word occurs.
    assert len(subword_ids(["ab", "ab"], 4096, 100)) == 3
    assert subword_ids(["ab"], 4096, 100) == subword_ids(["ab", "ab"], 4096, 100)
    assert subword_ids(["hello", "world"], 4096, 2) == subword_ids(["hello"], 4096, 2)
    batch = tok.subword_batch(TEXTS + ["", "zebra quantum"])
    assert batch.shape == (4, 64) and batch.dtype == np.int64
    assert (batch[2] == 0).all() and (batch[3] > 0).any()  # unknown words still have n-grams
    assert batch.min() >= 0 and batch.max() < 4096
    # the whitespace leak stays closed, and generated ids give what their decoded text gives
    assert (tok.subword_batch(["Great stay. \n"]) == tok.subword_batch(["Great stay."])).all()
    ids = tok.encode_batch(TEXTS)
    np.testing.assert_array_equal(tok.subword_batch_of_ids(ids),
                                  tok.subword_batch([tok.decode(r) for r in ids]))  # fmt: skip
    again = WordTokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again == tok and (again.subword_batch(TEXTS) == batch[:2]).all()
    with pytest.raises(ValueError, match="subword"):
        WordTokenizer.fit(TEXTS).subword_batch(TEXTS)


def test_hotel_folds_keep_each_hotel_in_one_fold():
    hotels = [f"h{i}" for i in range(16)]
    folds = hotel_folds(hotels)
    assert sorted(np.bincount(list(folds.values()))) == [3, 3, 3, 3, 4]
    data_dir = shared_data_dir()
    if not (data_dir / "deceptive_opinion.csv").is_file():
        pytest.skip("deceptive_opinion.csv not in ECOMGAN_DATA_DIR")
    data = load(data_dir)
    assert len(set(data.hotel)) == 16 and len(data) == len(set(data.text))  # duplicates dropped
    for hotel in set(data.hotel):
        assert len(set(data.fold[data.hotel == hotel])) == 1
    assert not any(t != normalise(t) for t in data.text)


def test_sampling_is_seeded_per_row(dry_checkpoint):
    from gan.reviews import generate, torch_step
    from gan.reviews import load as load_ckpt

    cfg, tok, nets = load_ckpt(dry_checkpoint)
    step = torch_step(nets["generator"])
    pol = np.array([1, 0, 1], dtype=np.int64)
    a = sample_tokens(step, cfg.lm_hidden, pol, np.array([5, 6, 7]), max_tokens=20)
    b = sample_tokens(step, cfg.lm_hidden, pol[1:], np.array([6, 7]), max_tokens=20)
    assert a[1:] == b and a != sample_tokens(step, cfg.lm_hidden, pol, np.array([8, 9, 10]),
                                             max_tokens=20)  # fmt: skip
    assert all(EOS_ID not in r and len(r) <= 20 for r in a)
    assert generate(dry_checkpoint, "positive", 2, 3) == generate(dry_checkpoint, "positive", 2, 3)


def test_export_parity_and_calibrated_scores(dry_checkpoint, tmp_path, monkeypatch):
    from export.pipeline import export_family
    from gan.reviews import load as load_ckpt
    from gan.reviews.model import DetectorExport

    data_dir = shared_data_dir()
    if not (data_dir / "deceptive_opinion.csv").is_file():
        pytest.skip("deceptive_opinion.csv not in ECOMGAN_DATA_DIR")
    result = export_family("reviews", dry_checkpoint, tmp_path / "out", data_dir=data_dir)
    manifest = result.manifest
    for role in ("generator", "discriminator"):
        assert manifest["roles"][role]["validation"]["max_abs_diffs"]  # parity was checked
    assert "CC BY-NC-SA 3.0" in (tmp_path / "out" / "LICENSE.md").read_text()
    assert manifest["calibration"]["target_fpr"] == 0.01
    cfg, tok, nets = load_ckpt(dry_checkpoint)
    ids, sub = tok.encode_batch(TEXTS), tok.subword_batch(TEXTS)
    sess = ort.InferenceSession(str(tmp_path / "out" / "discriminator.onnx"))
    assert [i.name for i in sess.get_inputs()] == ["ids", "subwords"]
    onnx_logit = sess.run(["logit"], {"ids": ids, "subwords": sub})[0]
    with torch.no_grad():
        torch_logit = DetectorExport(nets["discriminator"])(torch.from_numpy(ids),
                                                            torch.from_numpy(sub)).numpy()
    np.testing.assert_allclose(onnx_logit, torch_logit, atol=1e-5)
    p, flagged = apply_calibration(manifest["calibration"], onnx_logit)
    assert ((p > manifest["calibration"]["threshold"]) == flagged).all()
    gen = ort.InferenceSession(str(tmp_path / "out" / "generator.onnx"))
    assert [i.name for i in gen.get_inputs()] == ["hidden", "token", "polarity"]
    # The exported step + numpy loop (what the service runs) writes what the checkpoint does.
    from gan.reviews import write_samples
    from serving.sampling import from_folder

    family, run, nz, artifacts = from_folder(tmp_path / "out")
    family.load_api().write_samples(run, nz, artifacts, tmp_path / "onnx.jsonl", count=4, seed=2,
                                    category=None, conditions={"polarity": "negative"})  # fmt: skip
    write_samples(dry_checkpoint, tmp_path / "torch.jsonl", count=4, seed=2,
                  conditions={"polarity": "negative"})  # fmt: skip
    assert (tmp_path / "onnx.jsonl").read_text() == (tmp_path / "torch.jsonl").read_text()


def test_copy_metrics_and_markov_floor():
    train = [words("the room was clean and the staff were very friendly to us all week long")]
    index = CopyIndex(train)
    copied = words("we said the room was clean and the staff were very friendly indeed")
    fresh = words("a quiet hotel near the river with a small gym")
    m = copying([copied, fresh], index)
    assert m["copy_share_8gram"] == 0.5 and m["longest_copied_span"] == 10
    assert index.half_copied(copied) and not index.half_copied(fresh)
    assert distinct([["a", "a", "b"]], 1) == pytest.approx(2 / 3)
    unique = [words("a quiet hotel near the river")]
    chain = BigramChain(unique, [1])
    assert chain.sample(1, seed=3) == unique[0]  # every word has one successor
    branching = BigramChain(train, [1])
    assert branching.sample(1, seed=3) == branching.sample(1, seed=3)


def test_quick_evaluation_writes_both_tables(dry_checkpoint, tmp_path):
    from gan.reviews.evaluate import evaluate

    data_dir = shared_data_dir()
    if not (data_dir / "deceptive_opinion.csv").is_file():
        pytest.skip("deceptive_opinion.csv not in ECOMGAN_DATA_DIR")
    result = evaluate(dry_checkpoint, tmp_path, data_dir=data_dir, quick=True, n_samples=6)
    det = result["detection"]
    assert set(det["TF-IDF 1-2 gram + linear SVM"]) >= {"accuracy", "auroc"}
    assert det["TF-IDF 1-2 gram + linear SVM"]["accuracy"]["mean"] > 0.75
    gen = result["generation"]
    assert {"held-out real", "ours (GRU, SeqGAN)", "word-bigram Markov chain"} <= set(gen)
    assert result["keys_on"]["trailing_whitespace_rule_accuracy_raw"]["positive"] > 0.8
    report = (tmp_path / "report.md").read_text()
    assert "TF-IDF 1-2 gram + linear SVM" in report and "[synthetic," in report
