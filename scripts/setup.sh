#!/usr/bin/env bash
# Creates .venv (Python 3.10+) and installs mtf_synth with its pinned
# dependencies. The two alias packages make t5's tfds-nightly / seqio-nightly
# requirements resolve to the pinned tensorflow-datasets / seqio releases, so
# exactly one of each lands in site-packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 'setuptools<81' wheel
.venv/bin/python -m pip install -q \
  ./packaging/tfds-nightly-alias ./packaging/seqio-nightly-alias \
  -e ".${MTF_SYNTH_EXTRAS:-}"
