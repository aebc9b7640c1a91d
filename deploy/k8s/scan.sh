#!/usr/bin/env bash
# Scan the rendered cpu, split and gpu overlays with checkov; the exceptions, each justified,
# are in deploy/k8s/.checkov.yaml. checkov lives in its own venv (it pins its own dependencies),
# made on first use and kept in the user's cache.
#   deploy/k8s/scan.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${ECOMGAN_CHECKOV_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ecomgan/checkov-venv}"

if ! "$VENV/bin/checkov" --version 2>/dev/null | grep -q '^3\.3\.'; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q "checkov>=3.3,<3.4"
fi
if command -v kustomize >/dev/null; then render=(kustomize build); else render=(kubectl kustomize); fi
command -v "${render[0]}" >/dev/null || { echo "scan.sh: needs kustomize or kubectl" >&2; exit 1; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for overlay in cpu split gpu; do
    "${render[@]}" "$HERE/$overlay" > "$out/$overlay.yaml"
done
# BC_SKIP_MAPPING: no guideline download either (the config's skip-download covers policies).
BC_SKIP_MAPPING=TRUE "$VENV/bin/checkov" --config-file "$HERE/.checkov.yaml" -d "$out"
