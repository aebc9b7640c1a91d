"""`ecomgan evaluate --family products`: measure generators (and the detector) side by side.

Every generator - a products checkpoint, a baseline checkpoint or a ``generator.onnx`` -
draws the same labels (balanced over categories) and the canonical latents of
``gan.common.latent``; outputs are rounded to 8-bit pixels, as served. Features are the
penultimate activations of the project's Fashion-MNIST classifier
(``models/products/classifier.npz``); real references come from the same splits, so each
metric is printed beside what real data scores:

- FID against the test split, beside train-vs-test FID (Heusel et al. 2017), overall and
  per category (intra-class FID);
- precision and recall, k = 3 (Kynkaenniemi et al. 2019), beside train-vs-test;
- class consistency: share of fakes classified as the requested category, beside the
  classifier's accuracy on real test images;
- C2ST accuracy (Lopez-Paz & Oquab 2017), beside train-vs-test (~0.5);
- memorisation: nearest-training-neighbour distances, in feature and pixel space,
  against those of real test images;
- the subject checkpoint's discriminator as a detector: AUROC, AP and TPR at 1% FPR on
  held-out real test images vs fakes of the subject and of every other generator.

``gan.products.report.write_report`` turns the result into ``report.json``, ``report.md``
and PNGs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan import metrics
from gan.common import latent, load_checkpoint, sha256_file
from gan.products.classifier import Classifier, embed, load_classifier
from gan.products.data import CATEGORIES, load_fashion_mnist, to_model_range
from gan.products.detector import detector_report, quantise

DEFAULT_CLASSIFIER = Path(__file__).resolve().parents[2] / "models/products/classifier.npz"
K = 3  # Kynkaenniemi et al. 2019
N_PIXEL_MEMO = 2000  # fakes (and test images) checked against all 60,000 train images in pixels


@dataclass
class GeneratorSource:
    """A generator to evaluate: ``forward(z, labels) -> images in [-1, 1]``."""

    name: str
    path: Path
    kind: str  # "products", "products-dcgan-baseline" or "onnx"
    nz: int
    forward: Callable[[np.ndarray, np.ndarray], np.ndarray]
    training: dict[str, Any]

    def generate(self, labels: np.ndarray, seed: int, batch: int = 500) -> np.ndarray:
        """Images for ``labels`` from ``latent(len(labels), nz, seed)``, on the 8-bit grid."""
        z = latent(len(labels), self.nz, seed)
        out = [self.forward(z[i : i + batch], labels[i : i + batch])
               for i in range(0, len(labels), batch)]  # fmt: skip
        return quantise(np.concatenate(out))


def open_generator(path: Path, name: str | None = None) -> GeneratorSource:
    """Open a products or baseline checkpoint (``.pt``) or a generator ONNX file.

    Raises:
        ValueError: If the file is none of these.
    """
    path = Path(path)
    name = name or path.stem
    if path.suffix == ".onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        z_in, y_in = sess.get_inputs()[:2]

        def run(z: np.ndarray, y: np.ndarray) -> np.ndarray:  # noqa: E306
            return sess.run(None, {z_in.name: z, y_in.name: y.astype(np.int64)})[0]

        return GeneratorSource(name, path, "onnx", int(z_in.shape[1]), run, {})
    family = load_checkpoint(path).get("family")
    if family == "products":
        from gan.products import describe, load

        cfg, nets = load(path)
        net, training = nets["generator"], describe(path)
        training = {k: training[k] for k in ("step", "elapsed_s", "parameters", "config")}
    elif family == "products-dcgan-baseline":
        from gan.products.baseline import load_baseline

        cfg, training, net = load_baseline(path)
    else:
        raise ValueError(f"{path}: not a products or baseline checkpoint (family {family!r})")

    @torch.no_grad()
    def forward(z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return net(torch.from_numpy(z), torch.from_numpy(y.astype(np.int64))).numpy()

    return GeneratorSource(name, path, family, cfg.nz, forward, training)


def balanced_labels(n: int) -> np.ndarray:
    """``n`` labels, as equal a share per category as ``n`` allows, in category order."""
    return np.sort(np.arange(n) % len(CATEGORIES)).astype(np.int64)


@dataclass
class Reference:
    """Real-data features shared by every generator's evaluation."""

    classifier: Classifier
    classifier_accuracy: float
    test_x: np.ndarray  # float32 (N, 1, 28, 28)
    test_y: np.ndarray
    test_f: np.ndarray
    test_p: np.ndarray
    train_x: np.ndarray  # uint8 (60000, 28, 28)
    train_y: np.ndarray
    train_f: np.ndarray
    train_flat: np.ndarray  # float32 (60000, 784) in [-1, 1], for pixel-space neighbours

    @classmethod
    def build(cls, classifier_path: Path, data_dir: Path | None, n_test: int | None = None,
              n_train: int | None = None) -> Reference:  # fmt: skip
        """Embed the test split and the train split (first ``n_test``/``n_train`` images)."""
        clf, _ = load_classifier(classifier_path)
        tx, ty, _ = load_fashion_mnist("test", data_dir)
        rx, ry, _ = load_fashion_mnist("train", data_dir)
        tx, ty, rx, ry = tx[:n_test], ty[:n_test], rx[:n_train], ry[:n_train]
        test_x = to_model_range(tx)[:, None]
        test_f, test_p = embed(clf, test_x)
        train_f, _ = embed(clf, to_model_range(rx)[:, None])
        acc = float((test_p.argmax(1) == ty).mean())
        flat = to_model_range(rx).reshape(len(rx), -1)
        return cls(clf, acc, test_x, ty, test_f, test_p, rx, ry, train_f, flat)


def _quality(ref: Reference, fake_f: np.ndarray, fake_p: np.ndarray, fake_y: np.ndarray,
             fake_pixels: np.ndarray, seed: int) -> dict[str, Any]:  # fmt: skip
    """Every generator metric, for features/probs/pixels of fakes with requested labels."""
    per_class = {
        c: metrics.fid(ref.test_f[ref.test_y == i], fake_f[fake_y == i])
        for i, c in enumerate(CATEGORIES)
    }
    pr_class = {  # within one category: does the generator cover that category's variety?
        c: metrics.precision_recall(ref.test_f[ref.test_y == i], fake_f[fake_y == i], k=K)
        for i, c in enumerate(CATEGORIES)
    }
    n = min(len(ref.test_f), len(fake_f))
    pr = metrics.precision_recall(ref.test_f[:n], fake_f[:n], k=K)
    pred = fake_p.argmax(1)
    m = N_PIXEL_MEMO
    return {
        "fid": metrics.fid(ref.test_f, fake_f),
        "fid_per_class": per_class,
        "fid_per_class_mean": float(np.mean(list(per_class.values()))),
        "precision": pr["precision"],
        "recall": pr["recall"],
        "precision_per_class": {c: v["precision"] for c, v in pr_class.items()},
        "recall_per_class": {c: v["recall"] for c, v in pr_class.items()},
        "class_consistency": float((pred == fake_y).mean()),
        "class_consistency_per_class": {
            c: float((pred[fake_y == i] == i).mean()) for i, c in enumerate(CATEGORIES)
        },
        "c2st": metrics.c2st(ref.test_f, fake_f, seed=seed),
        "memorisation_features": metrics.memorisation(fake_f, ref.train_f, ref.test_f),
        "memorisation_pixels": metrics.memorisation(
            _spread(fake_pixels, m).reshape(-1, 784),
            ref.train_flat,
            _spread(ref.test_x, m).reshape(-1, 784),
        ),
    }


def _pop_distances(entry: dict[str, Any], name: str, arrays: dict[str, np.ndarray]) -> None:
    for space in ("features", "pixels"):
        memo = entry[f"memorisation_{space}"]
        arrays[f"nn/{name}/{space}"] = memo.pop("fake_distances")
        arrays[f"nn/real/{space}"] = memo.pop("heldout_distances")


def _spread(x: np.ndarray, m: int) -> np.ndarray:
    # m items evenly spread over x (which is sorted by label), so every category is in.
    return x[np.linspace(0, len(x) - 1, min(m, len(x))).astype(int)]


def real_reference(ref: Reference, seed: int) -> dict[str, Any]:
    """What real data scores: a train subset (same size and labels as the test split) as fakes."""
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(ref.train_y == c), int((ref.test_y == c).sum()),
                                     replace=False) for c in range(len(CATEGORIES))])  # fmt: skip
    x = to_model_range(ref.train_x[idx])[:, None]
    f, p = embed(ref.classifier, x)
    other = np.setdiff1d(np.arange(len(ref.train_x)), idx)
    sub = Reference(
        **{
            **ref.__dict__,
            "train_x": ref.train_x[other],
            "train_f": ref.train_f[other],
            "train_flat": ref.train_flat[other],
        }
    )
    out = _quality(sub, f, p, ref.train_y[idx], x, seed)
    # For real data, "consistency" is the classifier's accuracy on test images.
    pred = ref.test_p.argmax(1)
    out["class_consistency"] = ref.classifier_accuracy
    out["class_consistency_per_class"] = {
        c: float((pred[ref.test_y == i] == i).mean()) for i, c in enumerate(CATEGORIES)
    }
    return out


def evaluate_generators(
    generators: dict[str, Path],
    *,
    classifier: Path = DEFAULT_CLASSIFIER,
    detector: Path | None = None,
    extra_detectors: dict[str, Path] | None = None,
    data_dir: Path | None = None,
    n_samples: int = 10_000,
    n_test: int | None = None,
    n_train: int | None = None,
    seed: int = 1,
    log: Any = print,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Evaluate generators against the test split, and a detector against all of them.

    Args:
        generators: Name -> checkpoint or ONNX file; the first is the subject (gated).
        classifier: The feature extractor artifact.
        detector: A products checkpoint whose discriminator is scored as a detector
            (default: the subject, if it is a products checkpoint; else none).
        extra_detectors: Name -> products checkpoint, scored the same way for comparison
            (e.g. the adversarial discriminator before fine-tuning); not gated.
        data_dir: Folder with the Fashion-MNIST files.
        n_samples: Fakes per generator (balanced over categories).
        n_test: Test images used (default all 10,000); small values for smoke tests.
        n_train: Train images used as the memorisation reference (default all 60,000).
        seed: Seed of the latents and of the two-sample test's split.
        log: Called with progress lines (``None`` for silence).

    Returns:
        ``(report, arrays)``: the JSON-able report and, for plots, sample images and
        detector scores keyed by name.
    """
    say = log or (lambda _: None)
    t0 = time.perf_counter()
    ref = Reference.build(classifier, data_dir, n_test, n_train)
    say(f"reference features ready ({time.perf_counter() - t0:.0f} s)")
    names = list(generators)
    report: dict[str, Any] = {
        "subject": names[0],
        "classifier": {
            "path": str(classifier),
            "test_accuracy": ref.classifier_accuracy,
            "feature_dim": ref.classifier.cfg.feature_dim,
        },  # fmt: skip
        "settings": {
            "n_samples": n_samples,
            "n_test": len(ref.test_y),
            "seed": seed,
            "k": K,
            "pixel_memorisation_samples": N_PIXEL_MEMO,
        },  # fmt: skip
        "real": real_reference(ref, seed),
        "generators": {},
    }
    arrays: dict[str, np.ndarray] = {}
    _pop_distances(report["real"], "train", arrays)
    labels = balanced_labels(n_samples)
    fakes: dict[str, np.ndarray] = {}
    for name, path in generators.items():
        t = time.perf_counter()
        src = open_generator(path, name)
        fakes[name] = src.generate(labels, seed)
        sample_s = time.perf_counter() - t
        f, p = embed(ref.classifier, fakes[name])
        entry = _quality(ref, f, p, labels, fakes[name], seed)
        _pop_distances(entry, name, arrays)
        entry.update(path=str(path), kind=src.kind, sha256=sha256_file(path),
                     training=src.training, sample_seconds=round(sample_s, 2))  # fmt: skip
        report["generators"][name] = entry
        arrays[f"samples/{name}"] = src.generate(np.repeat(np.arange(10), 10), seed)
        say(f"{name}: FID {entry['fid']:.2f} ({time.perf_counter() - t:.0f} s)")
    if detector is None and report["generators"][names[0]]["kind"] == "products":
        detector = Path(generators[names[0]])
    if detector is not None:
        report["detector"] = detector_report(
            Path(detector), (ref.test_x, ref.test_y), fakes, labels, names[0], seed, arrays
        )
    for name, path in (extra_detectors or {}).items():
        report.setdefault("other_detectors", {})[name] = detector_report(
            Path(path), (ref.test_x, ref.test_y), fakes, labels, names[0], seed, {}
        )
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report, arrays
