#!/usr/bin/env bash
# Set up Easel's virtual environment in .venv (idempotent; fast when already done).
# Reuses a torch that is already installed: if the system Python has torch (a CUDA or MPS build, say),
# the environment sees it instead of downloading another, and torchvision is added to match it.
# Otherwise installs torch $EASEL_TORCH_VERSION with torchvision $EASEL_TORCHVISION_VERSION (spandrel,
# which loads upscaler files, needs torchvision, and torchvision must match torch exactly).
# Usage: scripts/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "setup: Easel needs Python 3.10 or newer ($PY is $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.x" >&2
  exit 1
fi
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "setup: $PY cannot make virtual environments; install its venv module (Debian/Ubuntu: apt install python3-venv)" >&2
  exit 1
fi
TORCH="${EASEL_TORCH_VERSION:-2.14.1}"
TORCHVISION="${EASEL_TORCHVISION_VERSION:-0.29.1}"
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

if [ ! -x .venv/bin/python ]; then
  if "$PY" -c "import torch" 2>/dev/null; then
    echo "setup: reusing the torch of $PY ($("$PY" -c 'import torch; print(torch.__version__)'))"
    "$PY" -m venv --system-site-packages .venv
  else
    "$PY" -m venv .venv
  fi
fi
VPY=.venv/bin/python
quiet_pip() {  # pip, without the machine-specific "Location ... is ignored" index warnings
  "$VPY" -m pip "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }
}
if ! "$VPY" -c "import torch" 2>/dev/null; then
  echo "setup: installing torch $TORCH and torchvision $TORCHVISION"
  quiet_pip install -q "torch==$TORCH" "torchvision==$TORCHVISION"
elif ! "$VPY" -c "import torchvision" 2>/dev/null; then
  installed=$("$VPY" -c 'import torch; print(torch.__version__.split("+")[0])')
  echo "setup: adding the torchvision that matches torch $installed"
  quiet_pip install -q "torchvision" "torch==$installed"
fi
stamp=".venv/.easel-installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Easel's dependencies"
  quiet_pip install -q -e ".${extras}"
  touch "$stamp"
fi
