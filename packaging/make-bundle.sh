#!/usr/bin/env bash
# Makes the relocatable bundle of dfm — the same tree a user gets as the
# .tar.gz release, plus the test programs: the installed binaries and plugins,
# and the non-system shared libraries they need (found with ldd) in lib/,
# where every program finds them through its rpath ($ORIGIN/../lib).
#
#   packaging/make-bundle.sh [BUILD_DIR] [OUT_DIR]      (defaults: build, build/bundle)
#
# System libraries (glibc, libstdc++, libgcc) and the GPU driver and toolkit
# libraries (CUDA runtime/cuBLAS/cuDNN/NVRTC/NCCL, which every GPU machine has) are
# left out. Writes OUT_DIR and OUT_DIR.tar.xz.
set -euo pipefail
build=${1:-build}
out=${2:-$build/bundle}
rm -rf "$out"
cmake --install "$build" --prefix "$out" >/dev/null
cmake --install "$build" --prefix "$out" --component tests >/dev/null

system_lib='^(linux-vdso|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|ld-linux|libstdc\+\+|libgcc_s|libcuda\.so|libcublas|libcublasLt|libcudart|libcudnn|libnccl|libnvrtc|libnvidia)'
mkdir -p "$out/lib"
for f in "$out"/bin/* "$out"/lib/dfm/plugins/*.so; do
  ldd "$f" 2>/dev/null | awk '/=> \// {print $1, $3}' | while read -r name path; do
    if [[ ! $name =~ $system_lib && ! -e "$out/lib/$name" ]]; then cp -L "$path" "$out/lib/$name"; fi
  done
done
tar -C "$(dirname "$out")" -cJf "$out.tar.xz" "$(basename "$out")"
echo "bundle: $out ($(du -sh "$out" | cut -f1)), $out.tar.xz ($(du -sh "$out.tar.xz" | cut -f1))"
