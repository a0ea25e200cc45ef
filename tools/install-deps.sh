#!/usr/bin/env bash
# Installs dfm's build and test dependencies: Debian's packages, and the cuDNN
# frontend headers from PyPI.
# Idempotent: packages already present are not touched, and nothing is printed for them.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libboost-dev libboost-program-options-dev libboost-filesystem-dev  # Boost.DLL (header-only) + CLI
  libtomlplusplus-dev        # config files
  libgoogle-glog-dev         # logs
  nlohmann-json3-dev         # metrics.jsonl, safetensors headers, config.json
  libssl-dev                 # rendezvous handshake (HMAC-SHA-256 from libcrypto)
  libgtest-dev libgmock-dev  # tests
  libbenchmark-dev           # bench/
  libdnnl-dev                # cpu compute plugin: GEMMs (oneDNN)
  libopenblas-dev            # bench/gemm_libraries: the alternative we measured oneDNN against
  libgloo-dev                # gloo comm plugin
  libsentencepiece-dev       # dfm-data encode --tokenizer: SentencePiece models (Llama 2, Mistral)
  libprotobuf-dev protobuf-compiler  # TensorBoard event files (tensorflow.Event protos)
  python3                    # tools/ scripts
)

# The cuDNN frontend (header-only C++, the cuda plugin's attention graphs), from
# PyPI into .deps/, where the build looks for it. Pinned: its API moves.
cudnn_frontend_version=1.32.0
deps_dir="$(cd "$(dirname "$0")/.." && pwd)/.deps"
install_cudnn_frontend() {
  local target="$deps_dir/cudnn-frontend"
  [[ -f $target/VERSION && $(cat "$target/VERSION") == "$cudnn_frontend_version" ]] && return
  echo "install-deps: fetching nvidia-cudnn-frontend $cudnn_frontend_version headers"
  rm -rf "$target"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
    --target "$target" "nvidia-cudnn-frontend==$cudnn_frontend_version"
  # Only the headers are used; the wheel's Python module is not.
  find "$target" -mindepth 1 -maxdepth 1 ! -name include -exec rm -rf {} +
  echo "$cudnn_frontend_version" >"$target/VERSION"
}

# Python packages of tools/, from PyPI into .deps/python, which the tests put
# on PYTHONPATH (the python3 on PATH may not be Debian's): NumPy for
# llama_reference.py (the independent Llama an export is checked against),
# tokenizers for encode_hf_tokenizer.py (Hugging Face tokenizer.json files),
# tensorboard for read_tensorboard.py (our event files through TensorBoard's own
# reader), with its protobuf pinned too: tensorboard leaves that one open.
python_packages="numpy==1.26.4 tokenizers==0.20.3 tensorboard==2.20.0 protobuf==5.29.5"
install_python_packages() {
  local target="$deps_dir/python"
  [[ -f $target/VERSIONS && $(cat "$target/VERSIONS") == "$python_packages" ]] && return
  echo "install-deps: fetching $python_packages"
  rm -rf "$target"
  # shellcheck disable=SC2086  # one word per package
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$target" $python_packages
  echo "$python_packages" >"$target/VERSIONS"
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
install_cudnn_frontend
install_python_packages
