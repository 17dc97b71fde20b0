#!/usr/bin/env bash
# Prepares the GPU check here (no GPU needed): builds shlpt-vk and the test
# binaries of the engine packages, and gathers what the bare device machine
# lacks: the Vulkan loader and validation layer (Debian packages), the three
# tasks and the tokenizer the runner's tests read. Everything goes into one
# archive, gpucheck/bundle.tar.gz (git-ignored), which the device command
# carries; tools/gpu-check/gpu-check.sh unpacks and runs it there.
#
# Usage: tools/gpu-check/build.sh [DATA_ROOT [TOKENIZER_DIR]]
#   (defaults: ../shared/data and ../shared/assets/t5-tokenizer)
# With GPU_CHECK_CPU=1 (the dry run, which uses this machine's Vulkan
# loader and layer) a failed download of the Debian packages is a warning.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${1:-../shared/data}
tok=${2:-../shared/assets/t5-tokenizer}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

echo "== build"
go build -o "$stage/shlpt-vk" ./tools/shlpt-vk
git rev-parse --short HEAD > "$stage/REVISION" 2>/dev/null || echo unknown > "$stage/REVISION"
git diff --quiet HEAD 2>/dev/null || sed -i 's/$/ with uncommitted changes/' "$stage/REVISION"
mkdir -p "$stage/tests"
for pkg in gpu kernels autograd t5 shlpt/method shlpt/run; do
  go test -c -o "$stage/tests/$(echo "$pkg" | tr / _).test" "./$pkg"
done

echo "== Vulkan loader and validation layer"
mkdir -p "$stage/debs"
if ! (cd "$stage/debs" && apt-get download libvulkan1 vulkan-validationlayers >/dev/null); then
  if [ "${GPU_CHECK_CPU:-0}" != 1 ]; then
    echo "apt-get download libvulkan1 vulkan-validationlayers failed: the bundle would lack them"; exit 1
  fi
  echo "warning: apt-get download failed; the dry run uses this machine's Vulkan loader and layer"
fi

echo "== data for the runner's tests"
for t in CB COPA SST-2; do
  mkdir -p "$stage/data/shlpt/$t"
  cp "$data/shlpt/$t"/* "$stage/data/shlpt/$t/"
done
mkdir -p "$stage/tokenizer"
cp "$tok"/tokenizer.json "$tok"/spiece.model "$stage/tokenizer/"
[ -f "$tok/tokenizer_config.json" ] && cp "$tok/tokenizer_config.json" "$stage/tokenizer/"

mkdir -p gpucheck
tar czf gpucheck/bundle.tar.gz -C "$stage" .
ls -la gpucheck/bundle.tar.gz
echo "carry gpucheck and run: tools/gpu-check/gpu-check.sh"
