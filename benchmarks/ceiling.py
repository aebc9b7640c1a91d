"""The in-process ceiling: ONNX Runtime on the shipped products models, PyTorch eager beside it.

ORT sessions get the options the service uses (full graph optimisation, sequential execution,
intra-op threads = the usable CPUs, one inter-op thread), built here rather than imported so the
benchmark stays outside the code it measures. On a CUDA machine the CUDA provider runs with IO
binding (inputs and outputs stay on the device: the ceiling of the model, not of PCIe copies),
and PyTorch runs on the GPU too.

PyTorch eager is the same architecture (`gan.products.model`, shape from the manifest's training
config) with the ONNX file's weights where the initializer names map; the exporter folds two
generator BatchNorms into the convolutions before them, which is mapped back as an identity
BatchNorm plus the folded bias. The two runtimes' outputs are compared to prove the mapping.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.machine import REPO, ort_threads

MODELS = REPO / "models" / "products"
BATCHES = (1, 8, 32, 64, 128, 256)


@dataclass(frozen=True)
class Timing:
    """Throughput of one runtime on one model at one batch size."""

    model: str
    runtime: str
    device: str
    batch: int
    images_per_s: float
    images_per_cpu_s: float


def feeds(model: str, nz: int, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of the generator (`z`, `label`) or the discriminator (`image`, `label`)."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 10, n, dtype=np.int64)
    if model == "generator":
        return {"z": rng.standard_normal((n, nz), dtype=np.float32), "label": label}
    image = rng.uniform(-1, 1, (n, 1, 28, 28)).astype(np.float32)
    return {"image": image, "label": label}


def ort_session(path: Path, provider: str):
    """An ORT session with the service's options on `provider`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = ort_threads()
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=[provider])


def _time(step, n: int, seconds: float, device: str, model: str, runtime: str) -> Timing:
    """Call `step()` (one batch of `n`) for `seconds` after a warm-up; wall and CPU rate."""
    for _ in range(3):
        step()
    calls, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while calls < 3 or time.perf_counter() - wall0 < seconds:
        step()
        calls += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Timing(model, runtime, device, n, calls * n / wall, calls * n / max(cpu, 1e-9))


def time_ort(model: str, provider: str, nz: int, n: int, seconds: float) -> Timing:
    """ONNX Runtime on `provider`; CUDA runs through IO binding with device-resident tensors."""
    import onnxruntime as ort

    session = ort_session(MODELS / f"{model}.onnx", provider)
    x = feeds(model, nz, n)
    if provider != "CUDAExecutionProvider":
        return _time(lambda: session.run(None, x), n, seconds, "cpu", model, "onnxruntime")
    binding = session.io_binding()
    for name, value in x.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
    for out in session.get_outputs():
        binding.bind_output(out.name, "cuda", 0)

    def step() -> None:
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()

    return _time(step, n, seconds, "cuda", model, "onnxruntime")


def torch_models(nz_hint: int | None = None):
    """(generator, discriminator, note): eager modules with the ONNX weights where they map."""
    import torch

    from gan.products.model import Discriminator, Generator, ModelConfig

    manifest = json.loads((MODELS / "manifest.json").read_text())
    cfg = ModelConfig.from_dict(manifest["training"]["config"])
    nets = {"generator": Generator(cfg).eval(), "discriminator": Discriminator(cfg, False).eval()}
    notes = []
    for name, net in nets.items():
        torch.manual_seed(0)
        loaded = _load_onnx_weights(net, MODELS / f"{name}.onnx")
        diff = _max_diff(name, net, cfg.nz) if loaded else None
        if loaded and diff is not None and diff < 1e-3:
            notes.append(f"{name}: ONNX weights (max abs diff vs ORT {diff:.1e})")
        else:
            for p in net.parameters():  # speed does not depend on the values
                torch.nn.init.normal_(p, std=0.02)
            notes.append(f"{name}: random weights (ONNX initializer names did not map)")
    return nets["generator"], nets["discriminator"], "; ".join(notes)


def _load_onnx_weights(net, path: Path) -> bool:
    """Copy the ONNX initializers into `net` by name; False if any parameter is left over."""
    import onnx
    import torch
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    state = net.state_dict()
    new = {}
    for key, value in state.items():
        if key in inits and tuple(inits[key].shape) == tuple(value.shape):
            new[key] = torch.from_numpy(inits[key].copy())
    for key in [k for k in state if k not in new and k.endswith(".weight")]:
        # A BatchNorm folded into the conv before it: `<conv>.weight_bias` holds its shift.
        prefix, _, index = key[: -len(".weight")].rpartition(".")
        folded = f"{prefix}.{int(index) - 1}.weight_bias" if index.isdigit() else ""
        bn = key[: -len(".weight")]
        if folded in inits and f"{bn}.running_var" in state:
            eps = net.get_submodule(bn).eps
            new[key] = torch.ones_like(state[key])
            new[f"{bn}.bias"] = torch.from_numpy(inits[folded].copy())
            new[f"{bn}.running_mean"] = torch.zeros_like(state[f"{bn}.running_mean"])
            new[f"{bn}.running_var"] = torch.full_like(state[f"{bn}.running_var"], 1 - eps)
    missing = [k for k in state if k not in new and not k.endswith("num_batches_tracked")]
    if missing:
        return False
    net.load_state_dict({**state, **new})
    return True


def _max_diff(name: str, net, nz: int) -> float:
    import torch

    x = feeds(name, nz, 8, seed=1)
    ref = ort_session(MODELS / f"{name}.onnx", "CPUExecutionProvider").run(None, x)[0]
    with torch.inference_mode():
        got = net(*(torch.from_numpy(v) for v in x.values())).numpy()
    return float(np.abs(got - ref).max())


def time_torch(net, model: str, nz: int, n: int, seconds: float) -> Timing:
    """PyTorch eager (inference mode) on CUDA if available, else CPU with the same threads."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(ort_threads())
    net = net.to(device)
    x = [torch.from_numpy(v).to(device) for v in feeds(model, nz, n).values()]

    def step() -> None:
        with torch.inference_mode():
            net(*x)
        if device == "cuda":
            torch.cuda.synchronize()

    return _time(step, n, seconds, device, model, "pytorch eager")


def run(
    batches=BATCHES, seconds: float = 1.5, log=print, trials: int = 3
) -> tuple[list[Timing], str, str]:
    """Every runtime x model x batch size; returns (timings, primary ORT provider, weights note).

    Each point is the median of `trials` timings, the runtimes alternating, so a burst of
    load from elsewhere on a shared machine moves one trial, not the result.
    """
    import onnxruntime as ort

    have = ort.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in have]
    gen, disc, note = torch_models()
    nz = gen.cfg.nz
    rows = []
    for model, net in (("generator", gen), ("discriminator", disc)):
        for n in batches:
            runs: dict[str, list[Timing]] = {}
            for _ in range(trials):
                for provider in providers:
                    runs.setdefault(provider, []).append(time_ort(model, provider, nz, n, seconds))
                runs.setdefault("torch", []).append(time_torch(net, model, nz, n, seconds))
            for timings in runs.values():
                rows.append(sorted(timings, key=lambda t: t.images_per_s)[len(timings) // 2])
                log(rows[-1])
    return rows, providers[0], note
