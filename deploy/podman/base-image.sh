#!/usr/bin/env bash
# Make the local base image the bentos are built FROM: Debian bookworm (minbase) with Python 3.11,
# venv and pip, from Debian's packages through this host's apt sources. No registry involved.
#   deploy/podman/base-image.sh [IMAGE]      (default localhost/ecomgan-base:bookworm-py3.11)
# It skips the work when IMAGE is already in podman's storage (the CI cache).
set -euo pipefail

IMAGE="${1:-localhost/ecomgan-base:bookworm-py3.11}"
HERE="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/containers.conf}"

for tool in podman mmdebstrap; do
    command -v "$tool" >/dev/null || {
        echo "base-image.sh: $tool not found; install it: apt-get install podman buildah mmdebstrap runc catatonit" >&2
        exit 1
    }
done
if podman image exists "$IMAGE"; then
    echo "base image $IMAGE present"
    exit 0
fi

sources=/etc/apt/sources.list.d/debian.sources
[[ -f $sources ]] || sources=/etc/apt/sources.list
[[ -f $sources ]] || { echo "base-image.sh: no apt sources file found on this host" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
# Debian marks its Python "externally managed"; BentoML's Dockerfile installs uv with the
# system pip, so the marker goes. The host mirror is a dated snapshot: skip Valid-Until.
mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED' \
    --customize-hook='rm -f "$1"/etc/apt/apt.conf.d/99mmdebstrap' \
    bookworm "$work/rootfs.tar" "$sources"
podman import \
    --change 'CMD ["/bin/bash"]' \
    --change 'ENV LANG=C.UTF-8' \
    --message "ecomgan base: Debian bookworm minbase + python3 (made by deploy/podman/base-image.sh)" \
    "$work/rootfs.tar" "$IMAGE" >/dev/null
echo "base image $IMAGE made in $((SECONDS - start)) s"
