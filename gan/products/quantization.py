"""The products family's INT8 quantisation hooks, read by `export.pipeline.quantize_folder`.

They need an exported folder only (its ONNX files and manifest, no checkpoint), and keep
three sets of data apart:

- calibration of the activation ranges (`quantization_inputs`): Fashion-MNIST train images
  and fakes of the folder's FP32 generator from latents of the caller's seed, never the test
  split nor the evaluation latents;
- quality (`quantization_quality`): all 10,000 test images and ``n_samples`` fakes of the FP32
  generator with balanced labels and latents `EVAL_SEED` (as `ecomgan evaluate`), scored with
  the project classifier: FID (Heusel et al. 2017) and class consistency for a generator,
  AUROC and TPR/FPR at the manifest's threshold for a discriminator;
- the detector's Platt refit (`detector_inputs`): the inputs `gan.products.calibration_inputs`
  draws at export, with the ONNX generator in place of the checkpoint's.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from ecomgan.calibration import apply, auroc
from ecomgan.files import sha256_file
from ecomgan.int8_rules import DISCRIMINATOR_RULE, GENERATOR_RULE
from ecomgan.seeding import latent
from gan.products.data import CATEGORIES, load_fashion_mnist, to_model_range

EVAL_SEED = 1  # latents of the quality evaluation, as `ecomgan evaluate`
EVAL_SAMPLES = 5000
QUANTIZATION_RULES = {"generator": GENERATOR_RULE, "discriminator": DISCRIMINATOR_RULE}
_ROLES = tuple(QUANTIZATION_RULES)


def _check(folder: Path, role: str) -> Path:
    if role not in _ROLES:
        raise ValueError(f"role must be one of {_ROLES}, got {role!r}")
    folder = Path(folder).resolve()
    if not (folder / "generator.onnx").is_file():
        raise ValueError(f"{folder} has no generator.onnx; pass an exported products folder")
    return folder


def _generator(folder: Path) -> Any:
    from gan.products.evaluate import open_generator

    return open_generator(folder / "generator.onnx")


def quantization_inputs(
    folder: Path, role: str, n: int, seed: int, data_dir: Path | None = None
) -> dict[str, np.ndarray]:
    """Calibration inputs of one role, disjoint from `quantization_quality`'s data.

    Args:
        folder: An exported products folder (``generator.onnx`` makes the fakes).
        role: ``generator`` or ``discriminator``.
        n: Rows (at least 2).
        seed: Seed of the labels, latents and train images; must differ from `EVAL_SEED`.
        data_dir: Folder with the Fashion-MNIST files (None: ``gan.products.data``'s default).

    Returns:
        Generator: ``{"z": float32 (n, nz), "label": int64 (n,)}``. Discriminator:
        ``{"image": float32 (n, 1, 28, 28), "label": int64 (n,)}``, n // 2 train images
        followed by FP32-generator fakes (on the 8-bit grid, as served).

    Raises:
        ValueError: Bad role, n or seed, or no generator in ``folder``.
    """
    folder = _check(folder, role)
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    if seed == EVAL_SEED:
        raise ValueError(f"seed {seed} is the evaluation's latent seed; choose another")
    gen = _generator(folder)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CATEGORIES), n).astype(np.int64)
    if role == "generator":
        return {"z": latent(n, gen.nz, seed), "label": labels}
    x, y, _ = load_fashion_mnist("train", data_dir)
    idx = rng.choice(len(x), n // 2, replace=False)
    fake_labels = labels[: n - n // 2]
    return {
        "image": np.concatenate([to_model_range(x[idx])[:, None], gen.generate(fake_labels, seed)]),
        "label": np.concatenate([y[idx].astype(np.int64), fake_labels]),
    }


def detector_inputs(
    folder: Path, n: int, seed: int, data_dir: Path | None = None
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Real and fake discriminator inputs for a detector fit, as `export_family` draws them.

    The same draws as ``gan.products.calibration_inputs`` (test images, labels and latents
    from ``seed``), with the folder's ONNX generator instead of the checkpoint's.

    Returns:
        ``((real_images, real_labels), (fake_images, fake_labels))``: float32
        (n, 1, 28, 28) in [-1, 1] and int64 (n,).

    Raises:
        ValueError: ``n`` outside [1, 10000] or no generator in ``folder``.
    """
    folder = _check(folder, "discriminator")
    images, labels, _ = load_fashion_mnist("test", data_dir)
    if not 0 < n <= len(images):
        raise ValueError(f"n must be in [1, {len(images)}], got {n}")
    gen = _generator(folder)
    rng = np.random.Generator(np.random.PCG64(seed))
    idx = rng.choice(len(images), size=n, replace=False)
    real = (to_model_range(images[idx])[:, None], labels[idx].astype(np.int64))
    fake_labels = rng.integers(0, len(CATEGORIES), size=n, dtype=np.int64)
    z = latent(n, gen.nz, seed)
    fakes = np.concatenate([gen.forward(z[i : i + 500], fake_labels[i : i + 500])
                            for i in range(0, n, 500)])  # fmt: skip
    return real, (fakes.astype(np.float32), fake_labels)


class _Evaluation:
    """Test-split features and the FP32 generator's fakes, shared by every file scored."""

    def __init__(self, folder: Path, data_dir: Path | None, n_samples: int, seed: int) -> None:
        import json

        from gan.products.evaluate import DEFAULT_CLASSIFIER, Reference, balanced_labels

        own = folder / "classifier.npz"
        # Test features only; n_train=16 skips embedding the 60,000 train images.
        self.ref = Reference.build(own if own.is_file() else DEFAULT_CLASSIFIER, data_dir,
                                   n_train=16)  # fmt: skip
        self.calibration = json.loads((folder / "manifest.json").read_text())["calibration"]
        self.labels = balanced_labels(n_samples)
        self.seed = seed
        self.fakes = _generator(folder).generate(self.labels, seed)


@functools.lru_cache(maxsize=2)
def _evaluation(folder: Path, generator_sha: str, data_dir: Path | None, n: int,
                seed: int) -> _Evaluation:  # fmt: skip
    # generator_sha is only part of the key: a re-exported folder is evaluated afresh.
    return _Evaluation(folder, data_dir, n, seed)


def _session(path: Path) -> Any:
    import onnxruntime as ort

    # Full graph optimisation, as served: ORT fuses Q/DQ pairs into integer kernels only then.
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _logits(session: Any, image: np.ndarray, label: np.ndarray, batch: int = 500) -> np.ndarray:
    return np.concatenate([
        session.run(None, {"image": np.ascontiguousarray(image[i : i + batch]),
                           "label": np.ascontiguousarray(label[i : i + batch])})[0]
        for i in range(0, len(label), batch)
    ]).astype(np.float64).ravel()  # fmt: skip


def discriminator_logits(
    folder: Path,
    path: Path,
    data_dir: Path | None = None,
    *,
    n_samples: int = EVAL_SAMPLES,
    seed: int = EVAL_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits of the discriminator file ``path`` on the quality evaluation's real and fake images.

    Returns:
        ``(real, fake)``: float64 (10000,) for the test split and (n_samples,) for the fakes.
    """
    ev = _get(folder, data_dir, n_samples, seed)
    session = _session(path)
    return _logits(session, ev.ref.test_x, ev.ref.test_y), _logits(session, ev.fakes, ev.labels)


def _get(folder: Path, data_dir: Path | None, n: int, seed: int) -> _Evaluation:
    folder = _check(folder, "generator")
    return _evaluation(folder, sha256_file(folder / "generator.onnx"),
                       Path(data_dir).resolve() if data_dir else None, n, seed)  # fmt: skip


def quantization_quality(
    folder: Path,
    role: str,
    path: Path,
    data_dir: Path | None = None,
    *,
    n_samples: int = EVAL_SAMPLES,
    seed: int = EVAL_SEED,
) -> dict[str, float]:
    """The project's quality metrics of one ONNX file of ``role`` (FP32 or INT8).

    Args:
        folder: The exported products folder (its FP32 generator makes the fakes a
            discriminator is scored on; its manifest holds the threshold).
        role: ``generator`` or ``discriminator``.
        path: The ONNX file to score.
        data_dir: Folder with the Fashion-MNIST files.
        n_samples: Fakes generated (balanced labels).
        seed: Latent seed of the generated images.

    Returns:
        Generator: ``fid`` vs the test split and ``class_consistency``. Discriminator:
        ``auroc`` (fakes positive, higher logit = real) and ``tpr_at_threshold`` /
        ``fpr_at_threshold`` with the manifest's (FP32) calibration.
    """
    from gan import metrics
    from gan.products.classifier import embed

    _check(folder, role)
    ev = _get(folder, data_dir, n_samples, seed)
    if role == "generator":
        from gan.products.evaluate import open_generator

        images = open_generator(Path(path)).generate(ev.labels, seed)  # (N, 1, 28, 28)
        feats, probs = embed(ev.ref.classifier, images)
        return {
            "fid": metrics.fid(ev.ref.test_f, feats),
            "class_consistency": float((probs.argmax(1) == ev.labels).mean()),
        }
    real, fake = discriminator_logits(folder, path, data_dir, n_samples=n_samples, seed=seed)
    return {
        "auroc": auroc(-real, -fake),
        "tpr_at_threshold": float(apply(ev.calibration, fake)[1].mean()),
        "fpr_at_threshold": float(apply(ev.calibration, real)[1].mean()),
    }
