#!/usr/bin/env bash
# The GPU check: everything a session with a lent NVIDIA GPU runs, in one
# command of at most 8 minutes on a bare machine, from the bundle that
# tools/gpu-check/build.sh made here. It writes one markdown report,
# $OUT/gpu-check.md (or the path given), with the raw JSON lines beside it.
#
#   1. `shlpt-vk devices`;
#   2. the tests of gpu, kernels, autograd, t5, shlpt/method and shlpt/run
#      on the GPU with Khronos validation on;
#   3. `bench --op matmul` at the T5-large shapes next to cuBLAS (fp32,
#      PyTorch) in the same run, when PyTorch with CUDA is there;
#   4. `bench t5 --size t5-large` (f32 and bf16 weights) next to
#      tools/t5ref/bench_torch.py on CUDA, and `bench shlpt --size t5-large`.
#
# Usage (device machine, repository root): tools/gpu-check/gpu-check.sh [REPORT]
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=${OUT:-$root/gpucheck}
mkdir -p "$out"
report=${1:-$out/gpu-check.md}
work=/tmp/gpucheck
rm -rf "$work" && mkdir -p "$work"
tar xzf gpucheck/bundle.tar.gz -C "$work" || { echo "no gpucheck/bundle.tar.gz: run tools/gpu-check/build.sh first"; exit 1; }

# The Vulkan loader and the validation layer, if the machine lacks them.
if ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in "$work"/debs/libvulkan1_*.deb; do dpkg -x "$f" /; done
fi
for f in "$work"/debs/vulkan-validationlayers_*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ] && ! ls /usr/share/vulkan/icd.d/*nvidia* >/dev/null 2>&1; then
  export VK_DRIVER_FILES=$icd
fi
vk="$work/shlpt-vk"
size=${GPU_CHECK_SIZE:-t5-large} # a smaller size for a dry run on a CPU device
have_torch=0
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null && have_torch=1

{
  echo "# GPU check"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), revision $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
  echo "## Devices"
  echo
  echo '```'
  "$vk" devices 2>&1
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/nvidia-smi: /'
  echo
  echo "## Tests (SHLPT_VK_VALIDATE=1, default device)"
  echo
  echo "| package | result | seconds |"
  echo "|---|---|---|"
} > "$report"

for t in "$work"/tests/*.test; do
  name=$(basename "$t" .test)
  dir=${name//_//}
  start=$(date +%s)
  (cd "$dir" && SHLPT_VK_VALIDATE=1 SHLPT_DATA="$work/data" SHLPT_TOKENIZER="$work/tokenizer" \
     timeout 150 "$t" -test.timeout 140s > "$out/test-$name.log" 2>&1)
  rc=$?
  res=ok; [ $rc -ne 0 ] && res="FAIL (exit $rc; tail in test-$name.log)"
  echo "| $dir | $res | $(( $(date +%s) - start )) |" >> "$report"
done

shapes="3248x1024x1024/nt 3248x4096x1024/nt 3248x1024x4096/nt 3248x2816x1024/nt 406x406x64/nt/b128 406x64x406/b128 40x32128x1024/nt 2048x2048x2048"
{
  echo
  echo "## Matrix products: shlpt-vk against cuBLAS fp32 (TF32 off)"
  echo
  echo "| shape | shlpt-vk GFLOP/s | cuBLAS GFLOP/s | ratio |"
  echo "|---|---|---|---|"
} >> "$report"
: > "$out/matmul.jsonl"
for s in $shapes; do
  v=$("$vk" bench --op matmul --shape "$s" --runs 20 --json 2>&1 | tail -1)
  echo "$v" >> "$out/matmul.jsonl"
  c="{}"
  if [ $have_torch = 1 ]; then
    c=$(python3 tools/gpu-check/matmul_torch.py "$s" 2>&1 | tail -1)
    echo "$c" >> "$out/matmul.jsonl"
  fi
  python3 - "$s" "$v" "$c" >> "$report" <<'PY'
import json, sys
s, v, c = sys.argv[1:]
def g(x):
    try: return json.loads(x).get("gflops")
    except Exception: return None
a, b = g(v), g(c)
fmt = lambda x: "%.0f" % x if x else "n/a"
print("| %s | %s | %s | %s |" % (s, fmt(a), fmt(b), "%.2f" % (a / b) if a and b else "n/a"))
PY
done

{
  echo
  echo "## $size prompt-tuning steps (batch 8, 150 prompt + 256 input tokens, 5 target)"
  echo
  echo '```'
  "$vk" bench t5 --size "$size" --runs 3 --top 8 2>&1
  echo "--- the same with bf16 frozen weights:"
  "$vk" bench t5 --size "$size" --runs 3 --top 8 --weights bf16 2>&1
  if [ $have_torch = 1 ]; then
    echo "--- PyTorch on CUDA, same shapes (fp32):"
    python3 tools/t5ref/bench_torch.py --config "$size" --device cuda --runs 3 --warmup 1 2>&1
  fi
  echo '```'
  echo
  echo "## SHLPT's step against plain prompt tuning, $size"
  echo
  echo '```'
  "$vk" bench shlpt --size "$size" --runs 3 2>&1
  echo '```'
} >> "$report"
cp "$report" "$out/" 2>/dev/null
echo "report: $report"
cat "$report"
