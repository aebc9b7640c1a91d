"""The colocated-path micro-benchmark runs, and both request formats give the same bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_the_micro_benchmark_runs_and_its_variants_agree():
    proc = subprocess.run(
        [sys.executable, "benchmarks/colocated_path.py", "--requests", "20", "--trials", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # the script asserts byte-identical answers of the two variants before timing them
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| generator |")]
    rows += [line for line in proc.stdout.splitlines() if line.startswith("| discriminator |")]
    assert len(rows) == 8 and "avx512_vnni" in proc.stdout
