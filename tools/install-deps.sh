#!/usr/bin/env bash
# Installs dfm's build and test dependencies from Debian's packages.
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
  python3                    # tools/ scripts
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
