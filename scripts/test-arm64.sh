#!/usr/bin/env bash
# Cross-builds the quant kernels and their tests for AArch64 and runs them under qemu-user, so the
# NEON kernels (src/quant/*_neon.c) are tested against the scalar references on an x86 host.
# jansson is not needed: only src/quant/*.c, the flops probe (with the thread pool it runs on),
# src/util/error.c and the test files are compiled.
#
#   scripts/test-arm64.sh [BUILD_DIR]     (default: build-arm64; exit status 0 = all passed)
#
# Installs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user with apt-get if missing
# (needs root). On an AArch64 host it runs the tests natively.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/build-arm64}"
tests=(quant/test_quant_neon quant/test_quant_legacy quant/test_quant_k quant/test_types quant/test_gemm
       quant/test_repack_legacy quant/test_repack_kquants
       util/test_flops_probe)

native=0
if [ "$(uname -m)" = aarch64 ]; then native=1; fi

if [ "$native" = 1 ]; then
    cc="${CC:-cc}"
    run=()
else
    cc=aarch64-linux-gnu-gcc
    if ! command -v "$cc" >/dev/null || ! command -v qemu-aarch64 >/dev/null ||
        [ ! -d /usr/aarch64-linux-gnu/lib ]; then
        echo "installing the AArch64 cross toolchain and qemu-user" >&2
        sudo_cmd=()
        if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi
        "${sudo_cmd[@]}" apt-get install -y gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null ||
            { "${sudo_cmd[@]}" apt-get update >/dev/null &&
              "${sudo_cmd[@]}" apt-get install -y gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null; }
    fi
    run=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
fi

mkdir -p "$out"
# The same language mode and warnings as the CMake build (-std=c17 also keeps GCC from contracting
# the references' a*b-c into FMAs, which the bit-identity checks rely on).
cflags=(-std=c17 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -DTS_HAVE_NEON_KERNELS=1
        -I"$repo/src" -I"$repo/include" -I"$repo/tests/quant" -I"$repo/tests")
objs=()
for src in "$repo"/src/quant/*.c "$repo"/src/util/error.c "$repo"/src/util/threadpool.c \
           "$repo"/src/util/flops_probe.c "$repo"/src/util/flops_probe_neon.c; do
    case "$src" in *_avx2.c | *_avx512.c | *_avxvnni.c) continue ;; esac
    obj="$out/$(basename "${src%.c}").o"
    "$cc" "${cflags[@]}" -c "$src" -o "$obj"
    objs+=("$obj")
done

status=0
for t in "${tests[@]}"; do
    name="$(basename "$t")"
    "$cc" "${cflags[@]}" "$repo/tests/$t.c" "${objs[@]}" -lm -lpthread -o "$out/$name"
    echo "== $name"
    if ! (cd "$repo" && "${run[@]}" "$out/$name"); then
        echo "FAILED: $t" >&2
        status=1
    fi
done
exit "$status"
