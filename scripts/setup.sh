#!/usr/bin/env bash
# Installs the Debian packages that building, running and testing erlangshen need.
# Idempotent; run as root (or with sudo) on Debian 12.
#   scripts/setup.sh            build + runtime + test dependencies
#   scripts/setup.sh --slurm    also Slurm + munge (integration tests)
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache
  libopenblas-dev libhdf5-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  libutf8proc-dev librandom123-dev libgtest-dev
  openmpi-bin libopenmpi-dev
  python3-numpy python3-h5py python3-jieba
)
with_torch=1
for arg in "$@"; do
  case "$arg" in
    --slurm) packages+=(slurm-wlm munge) ;;
    --no-torch) with_torch=0 ;;
    *) echo "setup.sh: unknown option '$arg'" >&2; exit 1 ;;
  esac
done
[ "$with_torch" = 1 ] && packages+=(python3-torch)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup.sh: all ${#packages[@]} packages already installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup.sh: done"
