#!/usr/bin/env bash
# Installs what the bench/ scripts need (PyTorch, scikit-learn, numpy) into a Python
# virtual environment OUTSIDE the repository, and builds the worker they run against.
#
#   bench/setup-venv.sh                 # venv at ~/.venvs/ecobench-bench
#   bench/setup-venv.sh /path/to/venv   # or wherever you like (not inside the repo)
#
# torch is large (several GB with its CUDA libraries from PyPI). With
# TORCH_INDEX=https://download.pytorch.org/whl/cpu the CPU-only wheel (~200 MB) is used
# instead, where that index is reachable. Afterwards:
#   VENV/bin/python bench/compare_nets.py
#   VENV/bin/python bench/svm_vs_sklearn.py
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$HOME/.venvs/ecobench-bench}"
venv_abs="$(realpath -m "$venv")"
case "$venv_abs/" in
  "$root"/*) echo "setup-venv: $venv is inside the repository ($root); choose a path outside it" >&2; exit 2 ;;
esac

if [ ! -x "$venv_abs/bin/python" ]; then
  python3 -m venv "$venv_abs"
fi
"$venv_abs/bin/pip" install --quiet --upgrade pip
if [ -n "${TORCH_INDEX:-}" ]; then
  "$venv_abs/bin/pip" install --quiet torch --index-url "$TORCH_INDEX"
else
  "$venv_abs/bin/pip" install --quiet torch
fi
"$venv_abs/bin/pip" install --quiet scikit-learn numpy
"$venv_abs/bin/python" -c 'import torch, sklearn, numpy; print("torch", torch.__version__, "| scikit-learn", sklearn.__version__, "| numpy", numpy.__version__)'

(cd "$root" && cargo build --release -p ecobench-worker)
echo "ready: $venv_abs/bin/python bench/compare_nets.py"
