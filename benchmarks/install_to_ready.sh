#!/usr/bin/env bash
# Time from a fresh clone to a ready server with the README's first command, as a new user
# runs it: a new venv (its own pip), pip's cache off, HTTP and gRPC on free ports.
# Usage: bash benchmarks/install_to_ready.sh [HTTP_PORT [GRPC_PORT]]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
http_port="${1:-3400}" grpc_port="${2:-3401}"
work="$(mktemp -d)"
trap 'pkill -f -- "--port $http_port" || true; sleep 2; rm -rf "$work"' EXIT
git clone -q "$repo" "$work/ecomgan"
cd "$work/ecomgan"
# Command 1 of the README, with the ports made explicit.
command="$(grep -m1 '^python3 -m venv .venv' README.md)"
command="${command/ecomgan serve/ecomgan serve --port $http_port --grpc-port $grpc_port}"
export PIP_NO_CACHE_DIR=1 BENTOML_HOME="$work/bentoml"
start=$(date +%s.%N)
bash -c "$command" > "$work/log" 2>&1 &
until curl -sf "localhost:$http_port/readyz" > /dev/null 2>&1; do
    sleep 1
    if ! jobs %1 > /dev/null 2>&1; then tail -20 "$work/log"; exit 1; fi
done
end=$(date +%s.%N)
printf 'README command 1 -> ready: %.0f s (%s; load average %s)\n' "$(echo "$end - $start" | bc)" \
    "$(lscpu | sed -n 's/^Model name: *//p')" "$(cut -d' ' -f1-3 /proc/loadavg)"
