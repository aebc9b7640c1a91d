#!/usr/bin/env bash
# What Gradio would cost the bento, against the static web UI (serving/ui/): the install size
# of the serving requirements with and without Gradio, and the time to import it, which every
# entry worker would pay at start. Uses a throwaway venv; needs the package index.
#   bash benchmarks/ui_cost.sh [GRADIO_SPEC]      (default: gradio, the newest)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
spec="${1:-gradio}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/v"
quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }; }  # this host's pip.conf
quiet "$work/v/bin/pip" install -q -c "$repo/constraints.txt" -r "$repo/requirements-serve.txt"
before=$(du -sm "$work/v" | cut -f1)
packages_before=$("$work/v/bin/pip" list 2>/dev/null | tail -n +3 | wc -l)
quiet "$work/v/bin/pip" install -q "$spec"
after=$(du -sm "$work/v" | cut -f1)
packages_after=$("$work/v/bin/pip" list 2>/dev/null | tail -n +3 | wc -l)
static_kb=$(du -skb "$repo/serving/ui" "$repo/serving/ui.py" "$repo/serving/ui_data.py" | awk '{s+=$1} END {printf "%.0f", s / 1024}')
import_s=$("$work/v/bin/python" - <<'PY'
import statistics, subprocess, sys, time
runs = []
for _ in range(5):
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gradio"], check=True)
    runs.append(time.perf_counter() - t)
print(f"{statistics.median(runs):.2f} (min {min(runs):.2f}, max {max(runs):.2f})")
PY
)
version=$("$work/v/bin/python" -c "import gradio; print(gradio.__version__)")
echo "static UI files: ${static_kb} KB"
echo "serving venv: ${before} MB, ${packages_before} packages; with gradio ${version}: ${after} MB, ${packages_after} packages (+$((after - before)) MB)"
echo "python -c 'import gradio', median of 5: ${import_s} s"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
