#!/usr/bin/python3
"""PyTorch baseline (CPU, or CUDA with --device cuda) for the T5 prompt-tuning
step benchmark.

Runs the T5 of make_case.py (same semantics as HF T5ForConditionalGeneration)
in float32 with random weights, on the shapes of `shlpt-vk bench t5`:

  train: forward with dropout on, a soft prompt prepended to every row,
         teacher-forced loss, backward to the prompt only (weights frozen),
         one AdamW step on the prompt;
  eval:  forward without gradients (dropout off), logits and loss.

Prints one JSON line per measurement:
  {"impl": "torch-cpu", "config": ..., "step": "train"|"eval", "batch": 8,
   "prompt": 150, "input": 256, "target": 5, "ms_per_step": median over
   --runs timed steps after --warmup untimed ones, "tokens_per_s":
   batch*(prompt+input+target)/seconds per step, "peak_rss_mb": peak resident
   memory of the process that ran that step, ...}

Each step kind runs in its own child process, so that its peak RSS is its own.

  /usr/bin/python3 tools/t5ref/bench_torch.py --config t5-small
"""

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_case as ref  # noqa: E402

NAMED = {
    # HF t5-small / t5-base / t5-large (T5 v1.0: relu, tied head).
    "t5-small": dict(d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=6),
    "t5-base": dict(d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12),
    "t5-large": dict(d_model=1024, d_ff=4096, d_kv=64, num_heads=16, num_layers=24),
}


def make_config(name):
    if name in NAMED:
        raw = dict(NAMED[name], vocab_size=32128, feed_forward_proj="relu",
                   tie_word_embeddings=True, dropout_rate=0.1)
    else:
        with open(name) as f:
            raw = json.load(f)
    return ref.Config(raw)


def random_weights(cfg, gen):
    """float32 weights of HF-like scales (values do not change the timing, but
    keep activations finite and away from denormals)."""
    d = cfg.d_model
    w = {}
    for name, shape in cfg.weight_shapes():
        leaf = name.rsplit(".", 2)[-2]
        if len(shape) == 1:
            t = torch.ones(shape)
        elif name in ("shared.weight", "lm_head.weight"):
            t = torch.randn(shape, generator=gen)
        elif leaf == "relative_attention_bias":
            t = 0.1 * torch.randn(shape, generator=gen)
        elif leaf == "q":
            t = torch.randn(shape, generator=gen) * (d * cfg.d_kv) ** -0.5
        else:
            t = torch.randn(shape, generator=gen) * shape[1] ** -0.5
        w[name] = t.float().requires_grad_(False)
    return w


def run_one(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = make_config(args.config)
    gen = torch.Generator().manual_seed(args.seed)
    dev = torch.device(args.device)
    w = {k: v.to(dev) for k, v in random_weights(cfg, gen).items()}
    B, Lp, L, T = args.batch, args.prompt, args.input, args.target
    V = cfg.vocab_size
    inp = {
        "input_ids": torch.randint(2, V, (B, L), generator=gen),
        "attention_mask": torch.ones(B, L, dtype=torch.long),
        "labels": torch.randint(2, V, (B, T), generator=gen),
    }
    inp["input_ids"][:, -1] = cfg.eos_id
    inp["labels"][:, -1] = cfg.eos_id
    inp["decoder_input_ids"] = ref.shift_right(inp["labels"], cfg.start_id)
    inp = {k: v.to(dev) for k, v in inp.items()}
    prompt = (0.5 * torch.randn(Lp, cfg.d_model, generator=gen)).to(dev).requires_grad_(True)
    opt = torch.optim.AdamW([prompt], lr=0.3, weight_decay=1e-5)

    if args.only == "train":
        drop = ref.Dropout(cfg.dropout_rate, True)

        def step():
            opt.zero_grad(set_to_none=True)
            r = ref.forward(w, cfg, inp, prompt, drop)
            r["loss"].backward()
            opt.step()
            return r["loss"]
    else:
        def step():
            with torch.no_grad():
                return ref.forward(w, cfg, inp, prompt.detach())["loss"]

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        loss = step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - t0)
    if not math.isfinite(float(loss)):
        raise SystemExit(f"loss is {float(loss)}")
    if args.profile > 0:
        # One more step under PyTorch's profiler: where the time goes, by
        # operator (self time), on stderr so that stdout stays JSON.
        with torch.autograd.profiler.profile() as prof:
            step()
            sync()
        print(f"{args.only} step, by operator:", file=sys.stderr)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile), file=sys.stderr)
    med = statistics.median(times)
    print(json.dumps({
        "impl": "torch-" + dev.type, "config": args.config, "step": args.only,
        "batch": B, "prompt": Lp, "input": L, "target": T,
        "ms_per_step": round(med * 1e3, 1),
        "tokens_per_s": round(B * (Lp + L + T) / med, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_device_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if dev.type == "cuda" else None,
        "ms_min": round(min(times) * 1e3, 1), "ms_max": round(max(times) * 1e3, 1),
        "runs": args.runs, "warmup": args.warmup, "threads": args.threads,
        "dropout": cfg.dropout_rate if args.only == "train" else 0.0,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "torch": torch.__version__,
    }), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="t5-small",
                    help="t5-small, t5-base, t5-large, or an HF config.json path")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=150, help="soft prompt length")
    ap.add_argument("--input", type=int, default=256, help="input tokens per row")
    ap.add_argument("--target", type=int, default=5, help="target tokens per row")
    ap.add_argument("--steps", default="train,eval", help="which steps to measure, comma-separated")
    ap.add_argument("--runs", type=int, default=5, help="timed steps (the median is reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="torch device: cpu, or cuda for the GPU baseline")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="after the timed steps, profile one more and print its N costliest operators (stderr)")
    ap.add_argument("--omp-wait-policy", default="passive", choices=["passive", "active", "default"],
                    help="OMP_WAIT_POLICY of the measuring processes (Debian's torch runs OpenMP threads "
                         "beside OpenBLAS's own; spinning OpenMP threads slow OpenBLAS down on few cores); "
                         "'default' leaves the environment alone")
    ap.add_argument("--only", choices=["train", "eval"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.only:
        run_one(args)
        return
    rc = 0
    for s in args.steps.split(","):
        if s not in ("train", "eval"):
            raise SystemExit(f"unknown step {s!r}")
        cmd = [sys.executable, os.path.abspath(__file__), "--only", s]
        for k in ("config", "batch", "prompt", "input", "target", "runs", "warmup", "threads", "seed", "device", "profile"):
            cmd += ["--" + k, str(getattr(args, k))]
        env = dict(os.environ)
        if args.omp_wait_policy != "default":
            env["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
        rc |= subprocess.call(cmd, env=env)
    sys.exit(rc)


if __name__ == "__main__":
    main()
