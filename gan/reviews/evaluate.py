"""`ecomgan evaluate --family reviews`: detection by hotel-grouped cross-validation, and the
generator's text against real reviews and a word-bigram Markov chain, in one run.

Detection: for each of the 5 hotel folds, the detector is trained on the other hotels twice
(``adversarial`` on and off: the k+1 detector beside the same detector without the generator,
both with the CV budget `CV_CONFIG`), and the baseline TF-IDF word 1-2 grams + linear SVM
(Ott et al. 2011) on the same split; accuracy, AUROC and accuracy per polarity, mean and spread
over folds. What the detector keys on: the trailing-whitespace rule on the raw texts, and the
words that push the k+1 detector most.

Generation (the checkpoint's generator; the reviews of its ``holdout_fold`` hotels are the
held-out real reviews): see ``gan.reviews.textmetrics``; polarity agreement by a TF-IDF logistic
regression trained on real training reviews; a real-vs-generated logistic regression on a
separately trained trigram LM's per-token scores (5-fold CV accuracy; 0.5 = indistinguishable).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ecomgan.calibration import auroc
from ecomgan.text import SPECIALS, words
from gan.reviews.data import N_FOLDS, POLARITIES, Reviews, csv_path, load
from gan.reviews.textmetrics import (
    BigramChain,
    CopyIndex,
    TrigramLM,
    copying,
    distinct,
    self_bleu,
)
from gan.reviews.train import TrainConfig, train

# The CV budget: every fold trains a generator too, so it is shorter than the shipped run.
CV_CONFIG = {"steps": 250, "mle_steps": 200}
QUICK_CONFIG = {"steps": 4, "mle_steps": 2, "lm_hidden": 16, "lm_embed": 8, "gen_tokens": 16,
                "bigram_buckets": 1024, "subword_buckets": 1024, "log_every": 2}  # fmt: skip


def _scores(logit: np.ndarray, data: Reviews) -> dict[str, float]:
    y, pred = data.deceptive, logit > 0
    out = {"accuracy": float((pred == y).mean()),
           "auroc": auroc(logit[y == 0], logit[y == 1])}  # fmt: skip
    for p, name in enumerate(POLARITIES):
        m = data.polarity == p
        out[f"accuracy_{name}"] = float((pred[m] == y[m]).mean())
    return out


def _detector_logits(checkpoint: Path, texts: np.ndarray) -> np.ndarray:
    from gan.reviews import load as load_checkpoint_nets
    from gan.reviews.model import DetectorExport

    _, tok, nets = load_checkpoint_nets(checkpoint)
    with torch.no_grad():
        ids = torch.from_numpy(tok.encode_batch(texts))
        sub = torch.from_numpy(tok.subword_batch(texts))
        return DetectorExport(nets["discriminator"])(ids, sub).numpy()


def svm_logits(train_texts, train_y, test_texts) -> np.ndarray:
    """TF-IDF word 1-2 grams + linear SVM (C=1, sublinear tf): the Ott et al. baseline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    svm = LinearSVC(C=1.0).fit(vec.fit_transform(train_texts), train_y)
    return svm.decision_function(vec.transform(test_texts))


def _summary(per_fold: list[dict[str, float]]) -> dict[str, Any]:
    keys = per_fold[0]
    return {k: {"mean": float(np.mean([f[k] for f in per_fold])),
                "std": float(np.std([f[k] for f in per_fold])),
                "folds": [f[k] for f in per_fold]} for k in keys}  # fmt: skip


def detection_cv(data: Reviews, base: TrainConfig, data_dir: Path | None, *,
                 folds: int = N_FOLDS) -> dict[str, Any]:  # fmt: skip
    """Hotel-grouped CV of the k+1 detector, the same detector without generator, and the SVM."""
    runs: dict[str, list[dict[str, float]]] = {"k+1 detector (adversarial)": [],
                                               "same detector, no generator": [],
                                               "TF-IDF 1-2 gram + linear SVM": []}  # fmt: skip
    cpu0 = time.process_time()
    for fold in range(folds):
        test, trn = data.subset(data.fold == fold), data.subset(data.fold != fold)
        assert not set(test.hotel) & set(trn.hotel)  # a hotel is in one fold only
        with tempfile.TemporaryDirectory() as tmp:
            for name, adversarial in (("k+1 detector (adversarial)", True),
                                      ("same detector, no generator", False)):  # fmt: skip
                cfg = replace(base, holdout_fold=fold, adversarial=adversarial)
                ckpt = train(cfg, Path(tmp) / name[:4], data_dir=data_dir, progress=False)
                runs[name].append(_scores(_detector_logits(ckpt, test.text), test))
        runs["TF-IDF 1-2 gram + linear SVM"].append(
            _scores(svm_logits(trn.text, trn.deceptive, test.text), test))
    result = {name: _summary(r) for name, r in runs.items()}
    result["cpu_s"] = time.process_time() - cpu0
    return result


def keys_on(data: Reviews, data_dir: Path | None, checkpoint: Path) -> dict[str, Any]:
    """What could be keyed on: the raw trailing-whitespace rule, and the detector's top words."""
    raw = pd.read_csv(csv_path(data_dir), usecols=["deceptive", "polarity", "text"])
    trailing = raw["text"].astype(str).str.endswith(" \n")
    truthful = raw["deceptive"] == "truthful"
    rule = {}
    for pol in POLARITIES:
        m = raw["polarity"] == pol
        rule[pol] = float((trailing[m] == truthful[m]).mean())
    from gan.reviews import load as load_checkpoint_nets

    _, tok, nets = load_checkpoint_nets(checkpoint)
    det = nets["discriminator"]
    with torch.no_grad():
        w = det.out.weight[1] - det.out.weight[0]  # (2D,) deceptive minus truthful
        push = (det.unigram.weight @ w[: det.cfg.embed_dim]).numpy()  # (V,) the word bag
    order = [i for i in np.argsort(push) if tok.vocab[i] not in SPECIALS]
    vocab = tok.vocab
    return {"trailing_whitespace_rule_accuracy_raw": rule,
            "deceptive_words": [vocab[i] for i in order[::-1][:15]],
            "truthful_words": [vocab[i] for i in order[:15]]}  # fmt: skip


def _lm_classifier(lm: TrigramLM, real: list, fake: list, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n = min(len(real), len(fake))
    x = np.array([lm.features(t) for t in real[:n] + fake[:n]])
    y = np.r_[np.zeros(n), np.ones(n)]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return float(cross_val_score(clf, x, y, cv=min(5, n), scoring="accuracy").mean())


def generation(checkpoint: Path, data: Reviews, holdout: int, n: int, seed: int) -> dict:
    """Copying, diversity, polarity agreement and real-vs-generated accuracy of the generator,
    the Markov floor and held-out real reviews."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from gan.reviews import generate

    trn = data.subset(data.fold != holdout) if holdout >= 0 else data
    held = data.subset(data.fold == holdout) if holdout >= 0 else data
    train_toks = [words(t) for t in trn.text]
    index, lm = CopyIndex(train_toks), TrigramLM(train_toks)
    chain = BigramChain(train_toks, trn.polarity)
    half = n // 2
    pol = np.r_[np.zeros(half, dtype=np.int64), np.ones(n - half, dtype=np.int64)]
    gen_texts = (generate(checkpoint, "negative", half, seed)
                 + generate(checkpoint, "positive", n - half, seed + half))  # fmt: skip
    sets = {
        "held-out real": ([words(t) for t in held.text[:n]], held.polarity[:n]),
        "ours (GRU, SeqGAN)": ([words(t) for t in gen_texts], pol),
        "word-bigram Markov chain": ([chain.sample(int(p), seed + i) for i, p in enumerate(pol)],
                                     pol),
    }  # fmt: skip
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    polclf = LogisticRegression(max_iter=1000).fit(vec.fit_transform(trn.text), trn.polarity)
    out: dict[str, Any] = {}
    real_toks = sets["held-out real"][0]
    for name, (toks, p) in sets.items():
        agree = polclf.predict(vec.transform([" ".join(t) for t in toks])) == p
        out[name] = {
            **copying(toks, index),
            "distinct_1": distinct(toks, 1),
            "distinct_2": distinct(toks, 2),
            "self_bleu4": self_bleu(toks, seed=seed),
            "polarity_agreement": float(agree.mean()),
            "mean_words": float(np.mean([len(t) for t in toks])),
        }
        if name != "held-out real":
            out[name]["real_vs_generated_accuracy"] = _lm_classifier(lm, real_toks, toks, seed)
    show = [0, 1, 2, half, half + 1, half + 2][: min(n, 6)]
    out["samples"] = [{"polarity": POLARITIES[pol[i]], "text": gen_texts[i], "synthetic": True}
                      for i in show]  # fmt: skip
    out["markov_samples"] = [" ".join(t) for t in sets["word-bigram Markov chain"][0][:2]]
    return out


def evaluate(checkpoint: Path, out: Path, *, data_dir: Path | None = None,
             n_samples: int | None = None, seed: int = 1, quick: bool = False,
             folds: int = N_FOLDS) -> dict[str, Any]:  # fmt: skip
    """Run both evaluations and write ``report.json`` and ``report.md`` into ``out``."""
    from gan.reviews import load as load_checkpoint_nets
    from gan.reviews.report import to_markdown

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg, _, _ = load_checkpoint_nets(checkpoint)
    data = load(data_dir)
    base = TrainConfig(seed=seed, **(QUICK_CONFIG if quick else CV_CONFIG))
    n = n_samples or (8 if quick else 200)
    result = {
        "checkpoint": str(checkpoint),
        "quick": quick,
        "cv_config": base.to_dict(),
        "detection": detection_cv(data, base, data_dir, folds=2 if quick else folds),
        "keys_on": keys_on(data, data_dir, checkpoint),
        "generation": generation(checkpoint, data, cfg.holdout_fold, n, seed),
    }
    (out / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "report.md").write_text(to_markdown(result))
    return result
