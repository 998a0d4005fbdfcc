#!/bin/bash
# The peers of bench/peers.py, outside the repository (neither is a project
# dependency): upstream mesh TF 0.1.21 in a TF 2.12.1 venv (the last TF it
# imports on unpatched; 2.13 and later fail) and a CPU-only torch for HF T5
# (transformers itself comes from the project's venv).
# usage: bash bench/setup_peers.sh [DIR]   (default $MTF_SYNTH_PEERS or
# ~/.cache/mtf_synth_bench); re-running skips what is already there.
set -euo pipefail
dir=${1:-${MTF_SYNTH_PEERS:-$HOME/.cache/mtf_synth_bench}}
mkdir -p "$dir"
upstream=$dir/upstream-tf2.12
if ! "$upstream/bin/python" -c "import mesh_tensorflow.transformer" 2>/dev/null; then
  python3.11 -m venv "$upstream"
  # setuptools < 81 still ships pkg_resources, which mesh TF imports.
  "$upstream/bin/pip" install -q "tensorflow-cpu==2.12.1" \
    "mesh-tensorflow[transformer]==0.1.21" gin-config "setuptools<81"
fi
torch_dir=$dir/torch
if ! PYTHONPATH=$torch_dir python3.11 -c "import torch" 2>/dev/null; then
  # A plain `pip install torch` from PyPI on Linux is a multi-GB CUDA build:
  # where no CPU wheel is at hand (pip's find-links), add
  # PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
  python3.11 -m pip install -q --target "$torch_dir" "torch==2.13.0+cpu"
fi
echo "upstream python: $upstream/bin/python"
echo "torch: PYTHONPATH=$torch_dir"
