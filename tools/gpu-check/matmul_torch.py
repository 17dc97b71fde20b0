#!/usr/bin/python3
"""cuBLAS (through PyTorch) on the matrix products of `shlpt-vk bench --op
matmul`, for the ratio in the GPU check.

Shapes are written as the Go benchmark writes them: "MxNxK" (C is M×N, the
inner dimension K), then "/nt", "/tn" or "/tt" when A and/or B are stored
transposed, then "/bZ" for Z products batched. Each product runs in fp32
with TF32 off (shlpt-vk computes in fp32), one warm-up, then --runs timed
with CUDA events; prints one JSON line per shape with the median.

  python3 tools/gpu-check/matmul_torch.py 3248x1024x1024/nt 406x406x64/nt/b128
"""

import argparse
import json
import statistics

import torch


def parse(shape):
    parts = shape.split("/")
    m, n, k = (int(x) for x in parts[0].split("x"))
    ta = tb = False
    batch = 1
    for p in parts[1:]:
        if p in ("nt", "tn", "tt"):
            ta, tb = p[0] == "t", p[1] == "t"
        elif p.startswith("b"):
            batch = int(p[1:])
        else:
            raise SystemExit(f"bad shape {shape!r}")
    return m, n, k, ta, tb, batch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shapes", nargs="+")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device("cuda")
    for shape in args.shapes:
        m, n, k, ta, tb, z = parse(shape)
        a = torch.randn((z, k, m) if ta else (z, m, k), device=dev)
        b = torch.randn((z, n, k) if tb else (z, k, n), device=dev)
        aa = a.transpose(1, 2) if ta else a
        bb = b.transpose(1, 2) if tb else b
        c = torch.matmul(aa, bb)
        torch.cuda.synchronize()
        times = []
        for _ in range(args.runs):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            torch.matmul(aa, bb, out=c)
            e.record()
            torch.cuda.synchronize()
            times.append(s.elapsed_time(e) * 1e3)
        med = statistics.median(times)
        print(json.dumps({"impl": "cublas-fp32", "shape": shape, "median_us": med,
                          "gflops": 2 * m * n * k * z / (med * 1e3), "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
