#!/usr/bin/env bash
# Set up a fresh machine and run the test suite.
# torch==2.13.0 first: it is the CPU build on local disk (an unpinned torch pulls CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e ".[dev,ray,warp]"
python3 -m ruff check .
python3 -m pytest -q -p no:cacheprovider
