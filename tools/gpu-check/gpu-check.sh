#!/usr/bin/env bash
# The GPU check: everything a session with a lent NVIDIA GPU runs, in one
# command under one deadline, from the bundle that tools/gpu-check/build.sh
# made beforehand (gpucheck/bundle.tar.gz). It writes one markdown report,
# $OUT/gpu-check.md (or the path given), with the raw outputs beside it, and
# exits non-zero unless the device opened and every device test passed.
#
#   1. preflight: nvidia-smi; NVIDIA's Vulkan driver manifest (ICD) found
#      where drivers put it, or written for libGLX_nvidia.so.0; the Vulkan
#      loader and the validation layer from the bundle when the machine
#      lacks them (unpacked with dpkg -x into a folder of their own);
#      `shlpt-vk devices` must show the NVIDIA GPU, or the check stops with
#      a diagnosis;
#   2. `bench --op matmul` at T5-large's shapes next to cuBLAS fp32 (TF32
#      off, one PyTorch process for all shapes) and the device's fp32 peak;
#   3. `bench t5 --size t5-large`, f32 and bf16 weights, next to
#      tools/t5ref/bench_torch.py on CUDA when PyTorch is there;
#   4. the tests of gpu, kernels, autograd, t5, shlpt/method and shlpt/run
#      with Khronos validation on, the device required (SHLPT_VK_REQUIRE=1)
#      and chosen by vendor (0x10de): per package the passed, failed and
#      skipped tests; any failure or skip fails the check;
#   5. `bench shlpt --size t5-large` with the time that is left.
#
# One deadline (GPU_CHECK_DEADLINE seconds, default 540) bounds all of it;
# each step gets at most its share and whatever finished is in the report.
#
# GPU_CHECK_CPU=1 is the dry run on a machine without a GPU (CI runs it):
# lavapipe instead of NVIDIA, t5-small with short sequences, small matrix
# products against PyTorch's CPU BLAS, a subset of the tests
# (GPU_CHECK_RUN, a -test.run pattern), a deadline of 150 s.
#
# Usage (repository root, bundle built): tools/gpu-check/gpu-check.sh [REPORT]
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
cpu=${GPU_CHECK_CPU:-0}
out=${OUT:-$root/gpucheck/out}
mkdir -p "$out"
report=${1:-$out/gpu-check.md}
if [ "$cpu" = 1 ]; then budget=${GPU_CHECK_DEADLINE:-150}; else budget=${GPU_CHECK_DEADLINE:-540}; fi
t0=$(date +%s)
deadline=$((t0 + budget))
left() { echo $((deadline - $(date +%s))); }

work=$(mktemp -d /tmp/gpucheck.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=()
notrun=()
fail() { failures+=("$1"); }

: > "$report"
say() { printf '%s\n' "$@" >> "$report"; }
block() { say '```'; cat >> "$report"; say '```'; }

finish() {
  say "" "## Verdict" ""
  if [ ${#notrun[@]} -gt 0 ]; then
    for s in "${notrun[@]}"; do say "- not run: $s"; done
  fi
  if [ ${#failures[@]} -eq 0 ]; then
    say "PASSED: the device opened under validation and every device test passed ($(( $(date +%s) - t0 )) s of $budget)."
    status=0
  else
    for f in "${failures[@]}"; do say "- FAILED: $f"; done
    say "" "FAILED ($(( $(date +%s) - t0 )) s of $budget)."
    status=1
  fi
  [ "$report" -ef "$out/gpu-check.md" ] || cp "$report" "$out/gpu-check.md"
  cat "$report"
  echo "report: $report"
  exit $status
}

if ! tar xzf gpucheck/bundle.tar.gz -C "$work" 2>"$out/untar.log"; then
  say "# GPU check" "" "No usable gpucheck/bundle.tar.gz: run tools/gpu-check/build.sh first ($(cat "$out/untar.log"))."
  fail "no bundle"
  finish
fi
vk="$work/shlpt-vk"
rev=$(cat "$work/REVISION" 2>/dev/null || echo unknown)
mode="NVIDIA GPU"
[ "$cpu" = 1 ] && mode="dry run on the CPU (lavapipe)"
say "# GPU check" "" "$(date -u +%Y-%m-%dT%H:%M:%SZ), revision $rev, $mode, deadline $budget s." ""

# --- 1. preflight -----------------------------------------------------------
say "## Preflight" ""
if [ "$cpu" = 1 ]; then
  export SHLPT_VK_DEVICE=llvmpipe
  size=t5-small
  shape_args=(--batch 1 --prompt 4 --input 12 --target 2)
  shapes="512x512x512 512x2048x512/nt 406x406x64/nt/b8"
  mm_runs=2
  t5_runs=1
else
  export SHLPT_VK_DEVICE=vendor:0x10de
  size=t5-large
  shape_args=()
  shapes="3248x1024x1024/nt 3248x4096x1024/nt 3248x1024x4096/nt 3248x2816x1024/nt 406x406x64/nt/b128 406x64x406/b128 40x32128x1024/nt 2048x2048x2048"
  mm_runs=20
  t5_runs=3
  if ! smi=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm --format=csv,noheader 2>&1); then
    say "nvidia-smi failed: the machine shows no NVIDIA GPU or driver:" ""
    printf '%s\n' "$smi" | block
    fail "preflight: nvidia-smi"
    finish
  fi
  say "nvidia-smi: $smi" ""
  sm_clock=$(printf '%s\n' "$smi" | head -1 | awk -F', ' '{print $5}' | grep -o '^[0-9]*' || true)
fi

# The Vulkan loader and the validation layer: the machine's own if it has
# them, else the bundle's, unpacked into a folder of their own (never into
# /, whose libraries they could replace).
sysroot="$work/root"
mkdir -p "$sysroot"
if ! ldconfig -p 2>/dev/null | grep 'libvulkan.so.1 ' >/dev/null; then
  for f in "$work"/debs/libvulkan1_*.deb; do dpkg -x "$f" "$sysroot"; done
  export LD_LIBRARY_PATH="$sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "- Vulkan loader: the bundle's ($(basename "$work"/debs/libvulkan1_*.deb)), unpacked into a folder of its own"
else
  say "- Vulkan loader: the machine's"
fi
if ! ls /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json >/dev/null 2>&1; then
  for f in "$work"/debs/vulkan-validationlayers_*.deb; do dpkg -x "$f" "$sysroot"; done
  export LD_LIBRARY_PATH="$sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export VK_LAYER_PATH="$sysroot/usr/share/vulkan/explicit_layer.d"
  say "- validation layer: the bundle's ($(basename "$work"/debs/vulkan-validationlayers_*.deb))"
else
  say "- validation layer: the machine's"
fi

if [ "$cpu" != 1 ]; then
  # NVIDIA's driver manifest: where drivers and containers put it; else one
  # written here for the driver's Vulkan library.
  icd=""
  for f in /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json \
    /usr/local/share/vulkan/icd.d/nvidia_icd*.json /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd*.json \
    /usr/local/nvidia/icd.d/nvidia_icd*.json; do
    [ -f "$f" ] && { icd=$f; break; }
  done
  if [ -z "$icd" ]; then
    lib=$(ldconfig -p 2>/dev/null | awk '/libGLX_nvidia.so.0 /{print $NF; exit}')
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
      [ -z "$lib" ] && [ -e "$d/libGLX_nvidia.so.0" ] && lib="$d/libGLX_nvidia.so.0"
    done
    if [ -n "$lib" ]; then
      icd="$work/nvidia_icd.json"
      printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", "api_version": "1.3.0"}}\n' "$lib" > "$icd"
      say "- Vulkan driver: no NVIDIA manifest installed; wrote one for $lib"
    fi
  else
    say "- Vulkan driver: $icd"
  fi
  if [ -n "$icd" ]; then
    export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd
  fi
fi

"$vk" devices > "$out/devices.txt" 2>&1
drc=$?
"$vk" devices --json > "$out/devices.jsonl" 2>/dev/null
say ""
block < "$out/devices.txt"
if [ $drc -ne 0 ] || ! grep -q '\[chosen\]' "$out/devices.txt" ||
  { [ "$cpu" != 1 ] && ! grep '\[chosen\]' -A2 "$out/devices.txt" | grep '0x10de' >/dev/null; }; then
  say "" "The device did not open: \`shlpt-vk devices\` with SHLPT_VK_DEVICE=$SHLPT_VK_DEVICE exited $drc." \
    "The Vulkan loader's own account (VK_LOADER_DEBUG=error,warn,driver):" ""
  VK_LOADER_DEBUG=error,warn,driver "$vk" devices 2>&1 | tail -40 | block
  say "" "Environment: VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset} LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-unset}"
  fail "preflight: the device is not usable through Vulkan"
  finish
fi
export SHLPT_VK_REQUIRE=1

py=""
sm_clock=${sm_clock:-}
for p in python3 /usr/bin/python3; do
  if [ "$cpu" = 1 ]; then probe='import torch'; else probe='import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; fi
  if command -v "$p" >/dev/null && "$p" -c "$probe" 2>/dev/null; then py=$p; break; fi
done
torchdev=cuda
[ "$cpu" = 1 ] && torchdev=cpu
torchenv=()
[ "$cpu" = 1 ] && torchenv=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)

# share SECONDS RESERVE: the time a step may take, at most SECONDS and
# leaving RESERVE for the steps after it.
share() {
  local l=$(( $(left) - $2 ))
  [ "$1" -lt "$l" ] && l=$1
  echo $l
}

# --- 2. matrix products -----------------------------------------------------
test_reserve=$(( budget * 45 / 100 ))
lim=$(share $(( budget * 15 / 100 )) $((test_reserve + budget * 25 / 100)))
say "" "## Matrix products: shlpt-vk against ${py:+PyTorch }$([ "$cpu" = 1 ] && echo "CPU BLAS" || echo "cuBLAS") fp32 (TF32 off)" ""
if [ "$lim" -lt 10 ]; then
  notrun+=("matrix products (deadline)")
  say "Not run: the deadline was too close."
else
  : > "$out/matmul.jsonl"
  end=$(( $(date +%s) + lim ))
  for s in $shapes; do
    l=$(( end - $(date +%s) ))
    [ $l -lt 3 ] && { notrun+=("matmul $s (deadline)"); continue; }
    timeout -k 5 $l "$vk" bench --op matmul --shape "$s" --runs $mm_runs --json >> "$out/matmul.jsonl" 2>> "$out/matmul.err"
    rc=$?
    if [ $rc = 124 ] || [ $rc = 137 ]; then notrun+=("matmul $s: stopped at the deadline")
    elif [ $rc != 0 ]; then
      echo "{\"impl\":\"shlpt-vk\",\"shape\":\"$s\",\"error\":true}" >> "$out/matmul.jsonl"
      fail "bench --op matmul --shape $s (exit $rc)"
    fi
  done
  l=$(( end - $(date +%s) ))
  if [ -n "$py" ] && [ $l -gt 3 ]; then
    # shellcheck disable=SC2086
    timeout -k 5 $l "${torchenv[@]}" "$py" tools/gpu-check/matmul_torch.py --device $torchdev --runs $mm_runs \
      ${sm_clock:+--sm-clock-mhz $sm_clock} $shapes > "$out/matmul_torch.jsonl" 2>> "$out/matmul.err"
  fi
  [ -n "$py" ] || say "No PyTorch with $torchdev here: the reference column is empty."
  "${py:-python3}" - "$out/matmul.jsonl" "$out/matmul_torch.jsonl" >> "$report" 2>> "$out/matmul.err" <<'PY' || say "(table failed: see matmul.err)"
import json, sys
def lines(p):
    try:
        return [json.loads(l) for l in open(p) if l.strip().startswith("{")]
    except OSError:
        return []
ours = {r.get("shape"): r for r in lines(sys.argv[1])}
ref = lines(sys.argv[2])
dev = next((r for r in ref if r.get("impl") == "device"), {})
peak = dev.get("fp32_peak_gflops")
refs = {r.get("shape"): r for r in ref if "shape" in r}
if peak:
    print("fp32 peak of %s: %.0f GFLOP/s (%d multiprocessors × %d lanes × 2 × %.0f MHz)\n" % (
        dev["name"], peak, dev["multiprocessors"], dev["fp32_lanes_per_mp"], dev["sm_clock_mhz"]))
print("| shape | shlpt-vk GFLOP/s | % of fp32 peak | reference GFLOP/s | % of fp32 peak | shlpt-vk / reference |")
print("|---|---|---|---|---|---|")
fmt = lambda x, f="%.0f": f % x if x else "n/a"
for s, o in ours.items():
    a, b = o.get("gflops"), refs.get(s, {}).get("gflops")
    pa = 100 * a / peak if a and peak else None
    pb = 100 * b / peak if b and peak else None
    print("| %s | %s | %s | %s | %s | %s |" % (s, "error" if o.get("error") else fmt(a), fmt(pa, "%.1f"),
          fmt(b), fmt(pb, "%.1f"), "%.2f" % (a / b) if a and b else "n/a"))
PY
fi

# --- 3. the T5 step ---------------------------------------------------------
lim=$(share $(( budget * 25 / 100 )) $test_reserve)
say "" "## $size prompt-tuning step${shape_args[*]:+ (${shape_args[*]})}" ""
if [ "$lim" -lt 10 ]; then
  notrun+=("bench t5 (deadline)")
  say "Not run: the deadline was too close."
else
  end=$(( $(date +%s) + lim ))
  {
    for w in f32 bf16; do
      l=$(( end - $(date +%s) ))
      [ $l -lt 3 ] && { echo "--- $w: not run (deadline)"; continue; }
      echo "--- shlpt-vk, $w weights:"
      timeout -k 5 $l "$vk" bench t5 --size $size --runs $t5_runs --top 8 --weights $w "${shape_args[@]}" 2>&1
      rc=$?
      if [ $rc = 124 ] || [ $rc = 137 ]; then echo "(stopped at the deadline)"; echo "bench t5 $w: stopped at the deadline" >> "$work/benchstop"
      elif [ $rc != 0 ]; then echo "(exit $rc)"; echo "bench t5 $w" >> "$work/benchfail"; fi
    done
    l=$(( end - $(date +%s) ))
    if [ -n "$py" ] && [ $l -gt 3 ]; then
      echo "--- PyTorch on $torchdev, same shapes (fp32):"
      timeout -k 5 $l "${torchenv[@]}" "$py" tools/t5ref/bench_torch.py --config $size --device $torchdev \
        --runs $t5_runs --warmup 1 "${shape_args[@]}" 2>&1 || echo "(exit $?)"
    fi
  } > "$out/bench-t5.txt"
  block < "$out/bench-t5.txt"
  if [ -f "$work/benchfail" ]; then while read -r b; do fail "$b"; done < "$work/benchfail"; fi
  if [ -f "$work/benchstop" ]; then while read -r b; do notrun+=("$b"); done < "$work/benchstop"; fi
fi

# --- 4. the tests, with validation ------------------------------------------
# All packages at once (they share the GPU; each its own process), each
# bounded by the tests' share of the deadline.
lim=$(share $test_reserve 5)
say "" "## Tests (SHLPT_VK_VALIDATE=1, SHLPT_VK_REQUIRE=1, SHLPT_VK_DEVICE=$SHLPT_VK_DEVICE)" ""
if [ "$lim" -lt 10 ]; then
  notrun+=("tests (deadline)")
  say "Not run: the deadline was too close."
  fail "tests: not run before the deadline"
else
  runargs=()
  if [ "$cpu" = 1 ]; then runargs=(-test.short -test.run "${GPU_CHECK_RUN:-Staged|DeviceInfo|Softmax|Dropout|Recorded}"); fi
  start=$(date +%s)
  for t in "$work"/tests/*.test; do
    name=$(basename "$t" .test)
    dir=${name//_//}
    (cd "$dir" && SHLPT_VK_VALIDATE=1 SHLPT_DATA="$work/data" SHLPT_TOKENIZER="$work/tokenizer" \
      timeout -k 5 "$lim" "$t" -test.v -test.timeout "$((lim + 30))s" "${runargs[@]}" > "$out/test-$name.log" 2>&1
     echo $? > "$work/rc-$name") &
  done
  wait
  say "| package | passed | failed | skipped | result |" "|---|---|---|---|---|"
  passed=0
  for t in "$work"/tests/*.test; do
    name=$(basename "$t" .test)
    dir=${name//_//}
    log="$out/test-$name.log"
    rc=$(cat "$work/rc-$name" 2>/dev/null || echo 1)
    p=$(grep -c -- '--- PASS:' "$log")
    f=$(grep -c -- '--- FAIL:' "$log")
    s=$(grep -c -- '--- SKIP:' "$log")
    res=ok
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then res="timed out after $lim s"; fail "tests of $dir: timed out"
    elif [ "$rc" != 0 ] || [ "$f" -gt 0 ]; then res="FAIL (exit $rc; test-$name.log)"; fail "tests of $dir: $f failed (exit $rc)"
    elif [ "$s" -gt 0 ]; then res="FAIL: a device test skipped"; fail "tests of $dir: $s skipped"
    elif [ "$p" = 0 ] && [ "$cpu" != 1 ]; then res="FAIL: no test ran"; fail "tests of $dir: none ran"
    fi
    say "| $dir | $p | $f | $s | $res |"
    passed=$((passed + ${p:-0}))
  done
  # The dry run runs a subset, so one package may run none, but not every one.
  if [ "$cpu" = 1 ] && [ "$passed" = 0 ]; then fail "tests: none ran (GPU_CHECK_RUN=${GPU_CHECK_RUN:-its default} matched nothing)"; fi
  say "" "$(( $(date +%s) - start )) s, the packages run side by side."
  if grep -h -E -- '--- (FAIL|SKIP):' "$out"/test-*.log >/dev/null 2>&1; then
    say "" "Failed and skipped tests (with the skip reasons, from the logs):" ""
    for t in "$work"/tests/*.test; do
      name=$(basename "$t" .test)
      grep -h -E -A2 -- '--- (FAIL|SKIP):' "$out/test-$name.log" | sed "s|^|$name: |" | head -40
    done | block
  fi
fi

# --- 5. SHLPT's step, with what is left --------------------------------------
lim=$(share 100000 5)
say "" "## SHLPT's step against plain prompt tuning, $size" ""
if [ "$lim" -lt 10 ]; then
  notrun+=("bench shlpt (deadline)")
  say "Not run: the deadline was too close."
else
  timeout -k 5 "$lim" "$vk" bench shlpt --size $size --runs $t5_runs "${shape_args[@]}" > "$out/bench-shlpt.txt" 2>&1
  rc=$?
  block < "$out/bench-shlpt.txt"
  if [ $rc = 124 ] || [ $rc = 137 ]; then notrun+=("bench shlpt: stopped at the deadline"); elif [ $rc != 0 ]; then fail "bench shlpt (exit $rc)"; fi
fi
finish
