#!/usr/bin/python3
"""The reference for the matrix products of `shlpt-vk bench --op matmul`:
cuBLAS through PyTorch on CUDA (or PyTorch's CPU BLAS with --device cpu, for
the GPU check's dry run), all shapes in this one process.

Shapes are written as the Go benchmark writes them: "MxNxK" (C is M×N, the
inner dimension K), then "/nt", "/tn" or "/tt" when A and/or B are stored
transposed, then "/bZ" for Z products batched. Each product runs in fp32
with TF32 off (shlpt-vk computes in fp32), one warm-up, then --runs timed
(CUDA events on the GPU, wall time on the CPU); prints one JSON line per
shape with the median, and first one line describing the device with its
fp32 peak where it can be computed (CUDA: multiprocessors × fp32 lanes per
multiprocessor × 2 × the highest SM clock).

  python3 tools/gpu-check/matmul_torch.py --sm-clock-mhz 1980 3248x1024x1024/nt 406x406x64/nt/b128
"""

import argparse
import json
import statistics
import time

import torch

# fp32 lanes per multiprocessor by compute capability (CUDA programming
# guide, "Arithmetic Instructions"): 64 on Volta, Turing and A100, 128 on
# GA10x, Ada, Hopper and Blackwell.
FP32_LANES = {(7, 0): 64, (7, 2): 64, (7, 5): 64, (8, 0): 64}


def fp32_lanes(major, minor):
    return FP32_LANES.get((major, minor), 128 if major >= 8 else None)


def parse(shape):
    parts = shape.split("/")
    m, n, k = (int(x) for x in parts[0].split("x"))
    ta = tb = False
    batch = 1
    for p in parts[1:]:
        if p in ("nt", "tn", "tt"):
            ta, tb = p[0] == "t", p[1] == "t"
        elif p.startswith("b") and p[1:].isdigit():
            batch = int(p[1:])
        else:
            raise SystemExit(f"bad shape {shape!r}")
    return m, n, k, ta, tb, batch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shapes", nargs="+")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--sm-clock-mhz", type=float, default=0,
                    help="highest SM clock (nvidia-smi --query-gpu=clocks.max.sm), for the fp32 peak")
    args = ap.parse_args()
    dev = torch.device(args.device)
    info = {"impl": "device", "torch": torch.__version__, "device": args.device}
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        p = torch.cuda.get_device_properties(0)
        lanes = fp32_lanes(p.major, p.minor)
        info.update(name=p.name, multiprocessors=p.multi_processor_count, compute_capability=f"{p.major}.{p.minor}",
                    fp32_lanes_per_mp=lanes, sm_clock_mhz=args.sm_clock_mhz or None)
        if lanes and args.sm_clock_mhz > 0:
            info["fp32_peak_gflops"] = p.multi_processor_count * lanes * 2 * args.sm_clock_mhz / 1e3
    else:
        info.update(name="cpu", threads=torch.get_num_threads())
    print(json.dumps(info), flush=True)
    impl = "cublas-fp32" if dev.type == "cuda" else "torch-cpu-fp32"
    for shape in args.shapes:
        m, n, k, ta, tb, z = parse(shape)
        a = torch.randn((z, k, m) if ta else (z, m, k), device=dev)
        b = torch.randn((z, n, k) if tb else (z, k, n), device=dev)
        aa = a.transpose(1, 2) if ta else a
        bb = b.transpose(1, 2) if tb else b
        c = torch.matmul(aa, bb)
        times = []
        for _ in range(args.runs):
            if dev.type == "cuda":
                torch.cuda.synchronize()
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                torch.matmul(aa, bb, out=c)
                e.record()
                torch.cuda.synchronize()
                times.append(s.elapsed_time(e) * 1e3)
            else:
                t0 = time.perf_counter()
                torch.matmul(aa, bb, out=c)
                times.append((time.perf_counter() - t0) * 1e6)
        med = statistics.median(times)
        out = {"impl": impl, "shape": shape, "median_us": med, "gflops": 2 * m * n * k * z / (med * 1e3)}
        if info.get("fp32_peak_gflops"):
            out["pct_fp32_peak"] = 100 * out["gflops"] / info["fp32_peak_gflops"]
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
