"""What a benchmark ran on: CPU, quota, memory, load, versions, accelerators; and CPU accounting.

Everything here reads the machine directly (procfs, cgroup files, package metadata) so that the
benchmark never imports the serving code it measures.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cgroup_quota() -> float | None:
    """CPU quota of this cgroup in CPUs (v2 `cpu.max`, else v1 CFS files); None if unlimited."""
    with contextlib.suppress(OSError, ValueError):
        q, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        return None if q == "max" else int(q) / int(period)
    with contextlib.suppress(OSError, ValueError):
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return q / period if q > 0 else None
    return None


def usable_cpus() -> int:
    """CPUs this process may use: affinity mask, capped by the cgroup quota (rounded up).

    The same rule the service uses to size ONNX Runtime's thread pool, so in-process and
    peer sessions get the threads the served model gets.
    """
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def ort_threads() -> int:
    """Intra-op threads for every ORT session of the benchmark (`$ECOMGAN_ORT_THREADS` wins)."""
    return int(os.environ.get("ECOMGAN_ORT_THREADS", 0)) or usable_cpus()


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def gpu_names() -> list[str]:
    """Names of the CUDA devices nvidia-smi sees (empty without a driver)."""
    if not shutil.which("nvidia-smi"):
        return []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return []


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_revision() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return f"{rev}{' (uncommitted changes)' if dirty else ''}" if rev else "unknown"
    return "unknown"


def describe(kserve_version: str | None = None) -> dict[str, str]:
    """The header of a benchmark report: one human-readable value per key."""
    import onnxruntime as ort
    import psutil

    quota = cgroup_quota()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = os.getloadavg()
    return {
        "CPU": f"{cpu_model()}, {os.cpu_count()} logical CPUs, affinity {affinity}",
        "cgroup CPU quota": "unlimited" if quota is None else f"{quota:g} CPUs",
        "ORT intra-op threads": str(ort_threads()),
        "RAM": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in load),
        "GPU": ", ".join(gpu_names()) or "none",
        "ORT providers": ", ".join(ort.get_available_providers()),
        "versions": (
            f"Python {platform.python_version()}, onnxruntime {ort.__version__}, "
            f"torch {version('torch')}, bentoml {version('bentoml')}, "
            f"kserve {kserve_version or 'not run'}"
        ),
        "commit": git_revision(),
    }


@dataclass
class TreeCPU:
    """CPU seconds (user + system) used by a process and its descendants between two reads.

    Descendants are looked up again at each read: workers that start late still count, and a
    process that exits between reads loses only its last interval (none do in a benchmark).
    """

    root_pid: int

    def _times(self) -> dict[int, float]:
        import psutil

        try:
            root = psutil.Process(self.root_pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return {}
        out = {}
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
        return out

    def start(self) -> None:
        self._start = self._times()

    def stop(self) -> float:
        """Seconds of CPU the tree used since `start()`."""
        end = self._times()
        return sum(v - self._start.get(pid, 0.0) for pid, v in end.items())
