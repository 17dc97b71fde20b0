#!/usr/bin/python3
"""Reference cases for the T5 model: an independent float64 implementation of
the semantics of HuggingFace's T5ForConditionalGeneration in plain PyTorch.

It needs only PyTorch and numpy (Debian's python3-torch, python3-numpy); it
does not use transformers or the safetensors package.

  make_case.py make --variant NAME --seed N --out DIR
      Creates a tiny random checkpoint (DIR/config.json, DIR/model.safetensors
      in the HF layout) for one of the variants below and DIR/case.safetensors:
      one batch of inputs and every expected output, computed in float64 and
      stored in float32 (the format of testdata/t5-tiny-relu/case.safetensors).

  make_case.py check --model DIR --case FILE
      Recomputes every expected tensor of FILE from its inputs and the
      checkpoint in DIR, and prints the largest error of each relative to the
      tensor's largest magnitude (exit status 1 above --tol). Run on
      testdata/t5-tiny-relu this checks this implementation against the
      independent one that produced that fixture.

Semantics (HF T5): RMS norm without mean subtraction or bias; attention
without 1/sqrt(d_kv) scaling; relative position bias from block 0's table of
each stack, computed once per stack (bidirectional buckets in the encoder,
causal in the decoder, none in cross-attention), with the bucket's logarithm
taken in float32 as HF does; additive masks of finfo(float32).min; relu or
gated (act(h·wi_0) * h·wi_1) feed-forward; pre-norm residual sublayers; final
norms; a tied LM head scales the decoder output by d_model**-0.5, an untied
one does not; mean token cross-entropy ignoring -100; decoder inputs are the
labels shifted right with start id 0.
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

MASK_NEG = torch.finfo(torch.float32).min
IGNORE = -100

# ---------------------------------------------------------------------------
# safetensors, read and written by hand: an 8-byte little-endian header
# length, a JSON header (dtype, shape, data_offsets per tensor, optional
# __metadata__ of strings), then the raw little-endian data.

_NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
       "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, info in header.items():
        s, e = info["data_offsets"]
        raw = buf[base + s:base + e]
        if info["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype=_NP[info["dtype"]])
        out[name] = a.reshape(info["shape"]).copy()
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, numpy array) in file order."""
    names = {np.dtype("float64"): "F64", np.dtype("float32"): "F32",
             np.dtype("float16"): "F16", np.dtype("int64"): "I64",
             np.dtype("int32"): "I32"}
    header, blobs, off = {}, [], 0
    for name, a in tensors:
        a = np.ascontiguousarray(a)
        dt = names[a.dtype]
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------------------
# Configuration (HF T5Config fields and defaults).

class Config:
    def __init__(self, d):
        self.raw = d
        self.d_model = d.get("d_model", 512)
        self.d_kv = d.get("d_kv", 64)
        self.d_ff = d.get("d_ff", 2048)
        self.num_layers = d.get("num_layers", 6)
        ndl = d.get("num_decoder_layers")
        self.num_decoder_layers = self.num_layers if ndl is None else ndl
        self.num_heads = d.get("num_heads", 8)
        self.vocab_size = d.get("vocab_size", 32128)
        self.num_buckets = d.get("relative_attention_num_buckets", 32)
        self.max_distance = d.get("relative_attention_max_distance", 128)
        self.eps = d.get("layer_norm_epsilon", 1e-6)
        self.dropout_rate = d.get("dropout_rate", 0.1)
        ffp = d.get("feed_forward_proj", "relu")
        parts = ffp.split("-")
        self.act = parts[-1]
        self.gated = parts[0] == "gated"
        if ffp == "gated-gelu":
            self.act = "gelu_new"
        self.tied = d.get("tie_word_embeddings", True)
        self.start_id = d.get("decoder_start_token_id", 0)
        self.eos_id = d.get("eos_token_id", 1)

    @property
    def inner(self):
        return self.num_heads * self.d_kv

    def weight_shapes(self):
        """HF names and shapes ([out, in] for linear layers), in file order."""
        d, inner, v = self.d_model, self.inner, self.vocab_size
        ws = [("shared.weight", (v, d))]

        def attention(prefix, bias):
            for p in "qkv":
                ws.append((f"{prefix}.{p}.weight", (inner, d)))
            ws.append((f"{prefix}.o.weight", (d, inner)))
            if bias:
                ws.append((f"{prefix}.relative_attention_bias.weight", (self.num_buckets, self.num_heads)))

        def ffn(prefix):
            if self.gated:
                ws.append((f"{prefix}.wi_0.weight", (self.d_ff, d)))
                ws.append((f"{prefix}.wi_1.weight", (self.d_ff, d)))
            else:
                ws.append((f"{prefix}.wi.weight", (self.d_ff, d)))
            ws.append((f"{prefix}.wo.weight", (d, self.d_ff)))

        for i in range(self.num_layers):
            b = f"encoder.block.{i}.layer."
            attention(b + "0.SelfAttention", i == 0)
            ws.append((b + "0.layer_norm.weight", (d,)))
            ffn(b + "1.DenseReluDense")
            ws.append((b + "1.layer_norm.weight", (d,)))
        ws.append(("encoder.final_layer_norm.weight", (d,)))
        for i in range(self.num_decoder_layers):
            b = f"decoder.block.{i}.layer."
            attention(b + "0.SelfAttention", i == 0)
            ws.append((b + "0.layer_norm.weight", (d,)))
            attention(b + "1.EncDecAttention", False)
            ws.append((b + "1.layer_norm.weight", (d,)))
            ffn(b + "2.DenseReluDense")
            ws.append((b + "2.layer_norm.weight", (d,)))
        ws.append(("decoder.final_layer_norm.weight", (d,)))
        if not self.tied:
            ws.append(("lm_head.weight", (v, d)))
        return ws


# ---------------------------------------------------------------------------
# The model, as functions of a dict of weights (name -> tensor).

def rms_norm(x, w, eps):
    # T5LayerNorm: scale only, no mean subtraction, no bias.
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def relative_position_bucket(rel, bidirectional, num_buckets, max_distance):
    """rel = key position - query position (int64). HF's bucketing, with the
    logarithm of large distances computed in float32 and truncated."""
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (rel > 0).long() * num_buckets
        n = rel.abs()
    else:
        n = -torch.minimum(rel, torch.zeros_like(rel))
    max_exact = num_buckets // 2
    is_small = n < max_exact
    logf = torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (logf * (num_buckets - max_exact)).long()
    large = torch.minimum(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(is_small, n, large)


def position_bias(table, tq, tk, bidirectional, cfg):
    """(H, tq, tk) bias from a (buckets, H) table, queries at positions
    0..tq-1 and keys at 0..tk-1."""
    q = torch.arange(tq, dtype=torch.long, device=table.device)[:, None]
    k = torch.arange(tk, dtype=torch.long, device=table.device)[None, :]
    b = relative_position_bucket(k - q, bidirectional, cfg.num_buckets, cfg.max_distance)
    return table[b].permute(2, 0, 1)


def activation(name, x):
    if name == "relu":
        return F.relu(x)
    if name == "gelu_new":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))
    if name == "gelu":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    raise ValueError(f"activation {name!r} not supported")


class Dropout:
    def __init__(self, rate, training):
        self.rate = rate if training else 0.0

    def __call__(self, x):
        return F.dropout(x, self.rate, True) if self.rate > 0 else x


def attention(w, prefix, x, kv, bias, cfg, drop):
    """bias: the position bias plus the additive mask, broadcast to
    (B, H, tq, tk), computed once per stack as HF does."""
    B, tq, _ = x.shape
    tk = kv.shape[1]
    H, dk = cfg.num_heads, cfg.d_kv
    q = (x @ w[prefix + ".q.weight"].t()).view(B, tq, H, dk).transpose(1, 2)
    k = (kv @ w[prefix + ".k.weight"].t()).view(B, tk, H, dk).transpose(1, 2)
    v = (kv @ w[prefix + ".v.weight"].t()).view(B, tk, H, dk).transpose(1, 2)
    s = q @ k.transpose(-1, -2) + bias  # no 1/sqrt(d_kv)
    p = drop(torch.softmax(s, dim=-1))
    ctx = (p @ v).transpose(1, 2).reshape(B, tq, H * dk)
    return ctx @ w[prefix + ".o.weight"].t()


def feed_forward(w, prefix, x, cfg, drop):
    """Returns the output and the activation act(h·wi) (act(h·wi_0) when
    gated)."""
    if cfg.gated:
        a = activation(cfg.act, x @ w[prefix + ".wi_0.weight"].t())
        h = a * (x @ w[prefix + ".wi_1.weight"].t())
    else:
        a = activation(cfg.act, x @ w[prefix + ".wi.weight"].t())
        h = a
    return drop(h) @ w[prefix + ".wo.weight"].t(), a


def encode(w, cfg, input_ids, attention_mask, prompt=None, drop=None):
    """Encoder output (B, Lp+L, d) and the additive key mask (B, 1, 1, Lp+L)."""
    drop = drop or Dropout(0, False)
    emb = w["shared.weight"]
    x = emb[input_ids]
    mask = attention_mask.to(emb.dtype)
    B = x.shape[0]
    if prompt is not None:
        x = torch.cat([prompt.unsqueeze(0).expand(B, -1, -1), x], dim=1)
        mask = torch.cat([torch.ones(B, prompt.shape[0], dtype=emb.dtype, device=emb.device), mask], dim=1)
    add_mask = ((1.0 - mask) * MASK_NEG)[:, None, None, :]
    x = drop(x)
    T = x.shape[1]
    bias = position_bias(w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], T, T, True, cfg)
    bias = bias[None] + add_mask
    for i in range(cfg.num_layers):
        p = f"encoder.block.{i}.layer."
        n = rms_norm(x, w[p + "0.layer_norm.weight"], cfg.eps)
        x = x + drop(attention(w, p + "0.SelfAttention", n, n, bias, cfg, drop))
        n = rms_norm(x, w[p + "1.layer_norm.weight"], cfg.eps)
        x = x + drop(feed_forward(w, p + "1.DenseReluDense", n, cfg, drop)[0])
    return drop(rms_norm(x, w["encoder.final_layer_norm.weight"], cfg.eps)), add_mask


def decode(w, cfg, dec_ids, enc, enc_mask, drop=None):
    """Decoder hidden states after the final norm (B, T, d), and the last
    block's activation (B, T, d_ff)."""
    drop = drop or Dropout(0, False)
    y = drop(w["shared.weight"][dec_ids])
    T = y.shape[1]
    bias = position_bias(w["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], T, T, False, cfg)
    causal = torch.tril(torch.ones(T, T, dtype=y.dtype, device=y.device))
    bias = bias[None] + ((1.0 - causal) * MASK_NEG)[None, None]
    act = None
    for i in range(cfg.num_decoder_layers):
        p = f"decoder.block.{i}.layer."
        n = rms_norm(y, w[p + "0.layer_norm.weight"], cfg.eps)
        y = y + drop(attention(w, p + "0.SelfAttention", n, n, bias, cfg, drop))
        n = rms_norm(y, w[p + "1.layer_norm.weight"], cfg.eps)
        y = y + drop(attention(w, p + "1.EncDecAttention", n, enc, enc_mask, cfg, drop))  # no position bias
        n = rms_norm(y, w[p + "2.layer_norm.weight"], cfg.eps)
        f, act = feed_forward(w, p + "2.DenseReluDense", n, cfg, drop)
        y = y + drop(f)
    return drop(rms_norm(y, w["decoder.final_layer_norm.weight"], cfg.eps)), act


def lm_logits(w, cfg, h):
    if cfg.tied:
        return (h * cfg.d_model ** -0.5) @ w["shared.weight"].t()
    return h @ w["lm_head.weight"].t()


def loss_fn(logits, labels):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)


def shift_right(labels, start_id):
    dec = torch.full_like(labels, start_id)
    dec[:, 1:] = labels[:, :-1]
    dec[dec == IGNORE] = 0
    return dec


def forward(w, cfg, inp, prompt, drop=None):
    enc, enc_mask = encode(w, cfg, inp["input_ids"], inp["attention_mask"], prompt, drop)
    h, act = decode(w, cfg, inp["decoder_input_ids"], enc, enc_mask, drop)
    logits = lm_logits(w, cfg, h)
    return dict(enc=enc, h=h, act=act, logits=logits, loss=loss_fn(logits, inp["labels"]))


def greedy(w, cfg, inp, prompt, steps):
    """Greedy decoding from the start id, without early stopping (full
    recomputation at every step). Returns the ids (B, steps+1) and the
    smallest gap between the best and second-best logit."""
    enc, enc_mask = encode(w, cfg, inp["input_ids"], inp["attention_mask"], prompt)
    B = enc.shape[0]
    ids = torch.full((B, 1), cfg.start_id, dtype=torch.long, device=enc.device)
    min_gap = math.inf
    for _ in range(steps):
        h, _ = decode(w, cfg, ids, enc, enc_mask)
        last = lm_logits(w, cfg, h)[:, -1]
        top = torch.topk(last, 2, dim=-1).values
        min_gap = min(min_gap, float((top[:, 0] - top[:, 1]).min()))
        ids = torch.cat([ids, last.argmax(-1, keepdim=True)], dim=1)
    return ids, min_gap


def compute_expected(w, cfg, inp, prompt, grad_names, steps):
    """Every expected tensor of a case, in float64."""
    out = {}
    # Pass 1: frozen weights, gradient with respect to the prompt.
    pr = prompt.clone().requires_grad_(True)
    r = forward(w, cfg, inp, pr)
    (gp,) = torch.autograd.grad(r["loss"], [pr])
    out["expected.encoder_last_hidden_state"] = r["enc"].detach()
    out["expected.logits"] = r["logits"].detach()
    out["expected.loss"] = r["loss"].detach().reshape(1)
    out["expected.grad.prompt"] = gp
    out["expected.decoder_last_hidden_first"] = r["h"][:, 0].detach()
    out["expected.last_ffn_activation_first"] = r["act"][:, 0].detach()
    # Pass 2: weights trainable.
    wg = {k: v.clone().requires_grad_(True) for k, v in w.items()}
    r2 = forward(wg, cfg, inp, prompt)
    grads = torch.autograd.grad(r2["loss"], [wg[n] for n in grad_names])
    for n, g in zip(grad_names, grads):
        out["expected.grad." + n] = g
    with torch.no_grad():
        ids, gap = greedy(w, cfg, inp, prompt, steps)
    out["expected.greedy_ids"] = ids
    return out, gap


# ---------------------------------------------------------------------------
# Loading a checkpoint and a case.

def load_model(dirname, dtype=torch.float64):
    with open(os.path.join(dirname, "config.json")) as f:
        cfg = Config(json.load(f))
    t, _ = read_safetensors(os.path.join(dirname, "model.safetensors"))
    w = {}
    for name, shape in cfg.weight_shapes():
        if name not in t:
            raise SystemExit(f"{dirname}: tensor {name} is missing")
        if tuple(t[name].shape) != tuple(shape):
            raise SystemExit(f"{dirname}: tensor {name} has shape {t[name].shape}, want {shape}")
        w[name] = torch.from_numpy(t[name].astype(np.float64)).to(dtype)
    for copy in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight") + (("lm_head.weight",) if cfg.tied else ()):
        if copy in t and not np.array_equal(t[copy], t["shared.weight"]):
            raise SystemExit(f"{dirname}: tied copy {copy} differs from shared.weight")
    return cfg, w


INPUT_NAMES = ("input_ids", "attention_mask", "labels", "decoder_input_ids")


def case_inputs(c):
    inp = {k: torch.from_numpy(c[k].astype(np.int64)) for k in INPUT_NAMES}
    prompt = torch.from_numpy(c["prompt"].astype(np.float64))
    return inp, prompt


# ---------------------------------------------------------------------------
# Variants: tiny random checkpoints.

BASE = {
    "architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
    "is_encoder_decoder": True, "decoder_start_token_id": 0, "eos_token_id": 1,
    "pad_token_id": 0, "dropout_rate": 0.0, "layer_norm_epsilon": 1e-6,
    "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
}

VARIANTS = {
    # T5 v1.1 style: gated-gelu (gelu_new), untied head without scaling,
    # num_heads*d_kv = 48 != d_model = 40, 3 encoder / 2 decoder blocks.
    "gated-untied": dict(
        config=dict(d_model=40, d_kv=12, num_heads=4, d_ff=48, num_layers=3, num_decoder_layers=2,
                    vocab_size=128, feed_forward_proj="gated-gelu", dense_act_fn="gelu_new",
                    is_gated_act=True, tie_word_embeddings=False),
        dtype="float32", tied_copies=True, prompt_len=6, lengths=[72, 69, 58], targets=[5, 3, 4]),
    # T5 v1.0 architecture in float16, tied head, without the tied copies
    # encoder/decoder.embed_tokens.weight in the file.
    "relu-tied-fp16": dict(
        config=dict(d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2, num_decoder_layers=2,
                    vocab_size=112, feed_forward_proj="relu", dense_act_fn="relu", is_gated_act=False,
                    tie_word_embeddings=True, torch_dtype="float16"),
        dtype="float16", tied_copies=False, prompt_len=5, lengths=[70, 66, 61], targets=[4, 5, 2]),
    # relu with an untied head, non-default bucket count, maximum distance and
    # layer-norm epsilon, 2 encoder / 1 decoder block, num_heads*d_kv = 24 != 32.
    "relu-untied": dict(
        config=dict(d_model=32, d_kv=6, num_heads=4, d_ff=40, num_layers=2, num_decoder_layers=1,
                    vocab_size=96, feed_forward_proj="relu", dense_act_fn="relu", is_gated_act=False,
                    tie_word_embeddings=False, relative_attention_num_buckets=20,
                    relative_attention_max_distance=48, layer_norm_epsilon=0.01),
        dtype="float32", tied_copies=True, prompt_len=4, lengths=[74, 60, 67], targets=[3, 5, 4]),
    # The activation and the gating chosen separately: gated relu
    # (relu(h·wi_0) * h·wi_1) with a tied head...
    "gated-relu": dict(
        config=dict(d_model=32, d_kv=8, num_heads=4, d_ff=36, num_layers=2, num_decoder_layers=2,
                    vocab_size=80, feed_forward_proj="gated-relu", dense_act_fn="relu", is_gated_act=True,
                    tie_word_embeddings=True),
        dtype="float32", tied_copies=True, prompt_len=3, lengths=[40, 33, 29], targets=[4, 2, 5]),
    # ... and gelu_new without gating, untied head, 1 encoder / 2 decoder blocks.
    "gelu-new": dict(
        config=dict(d_model=24, d_kv=6, num_heads=4, d_ff=56, num_layers=1, num_decoder_layers=2,
                    vocab_size=64, feed_forward_proj="gelu_new", dense_act_fn="gelu_new", is_gated_act=False,
                    tie_word_embeddings=False),
        dtype="float32", tied_copies=False, prompt_len=5, lengths=[37, 41, 30], targets=[5, 4, 3]),
}


def random_weights(cfg, rng):
    """Weights of moderate scale: every sublayer changes the residual stream
    noticeably and attention is neither uniform nor one-hot."""
    d, inner = cfg.d_model, cfg.inner
    w = {}
    for name, shape in cfg.weight_shapes():
        leaf = name.rsplit(".", 2)[-2]
        if len(shape) == 1:
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name == "shared.weight":
            a = rng.standard_normal(shape)
        elif name == "lm_head.weight":
            a = 2.0 * d ** -0.5 * rng.standard_normal(shape)
        elif leaf == "relative_attention_bias":
            a = 0.5 * rng.standard_normal(shape)
        elif leaf == "q":
            a = 1.5 * (d * cfg.d_kv) ** -0.5 * rng.standard_normal(shape)
        elif leaf in ("k", "v", "wi", "wi_0", "wi_1"):
            a = d ** -0.5 * rng.standard_normal(shape)
        elif leaf == "o":
            a = 3.0 * inner ** -0.5 * rng.standard_normal(shape)
        elif leaf == "wo":
            a = 3.0 * cfg.d_ff ** -0.5 * rng.standard_normal(shape)
        else:
            raise AssertionError(name)
        w[name] = a
    return w


def random_inputs(cfg, spec, rng):
    B = len(spec["lengths"])
    L = max(spec["lengths"])
    V = cfg.vocab_size
    ids = np.zeros((B, L), np.int64)
    am = np.zeros((B, L), np.int64)
    for b, n in enumerate(spec["lengths"]):
        ids[b, :n - 1] = rng.integers(2, V, n - 1)
        ids[b, n - 1] = cfg.eos_id
        am[b, :n] = 1
    T = max(spec["targets"])
    labels = np.full((B, T), IGNORE, np.int64)
    for b, n in enumerate(spec["targets"]):
        labels[b, :n - 1] = rng.integers(2, V, n - 1)
        labels[b, n - 1] = cfg.eos_id
    prompt = 0.5 * rng.standard_normal((spec["prompt_len"], cfg.d_model))
    return ids, am, labels, prompt


def grad_names_for(cfg):
    last = cfg.num_decoder_layers - 1
    enc_last = cfg.num_layers - 1
    ff = f"decoder.block.{last}.layer.2.DenseReluDense."
    names = [
        "shared.weight",
        "encoder.block.0.layer.0.SelfAttention.q.weight",
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
        f"encoder.block.{enc_last}.layer.1.layer_norm.weight",
        "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
        "decoder.block.0.layer.1.EncDecAttention.k.weight",
        "decoder.final_layer_norm.weight",
    ]
    names += [ff + "wi_0.weight", ff + "wi_1.weight"] if cfg.gated else [ff + "wi.weight"]
    names.append(ff + "wo.weight")
    if not cfg.tied:
        names.append("lm_head.weight")
    return names


def cmd_make(args):
    spec = VARIANTS[args.variant]
    raw = dict(BASE)
    raw.update(spec["config"])
    cfg = Config(raw)
    rng = np.random.default_rng(args.seed)
    w = random_weights(cfg, rng)
    np_dtype = np.dtype(spec["dtype"])
    stored = {k: v.astype(np_dtype) for k, v in w.items()}
    ids, am, labels, prompt = random_inputs(cfg, spec, rng)
    prompt = prompt.astype(np.float32)

    # The reference computes from exactly the stored values.
    wt = {k: torch.from_numpy(v.astype(np.float64)) for k, v in stored.items()}
    inp = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(am),
           "labels": torch.from_numpy(labels)}
    inp["decoder_input_ids"] = shift_right(inp["labels"], cfg.start_id)
    expected, gap = compute_expected(wt, cfg, inp, torch.from_numpy(prompt.astype(np.float64)),
                                     grad_names_for(cfg), args.steps)
    greedy_ids = expected["expected.greedy_ids"].numpy()
    eos_rows = int((greedy_ids[:, 1:] == cfg.eos_id).any(axis=1).sum())
    print(f"variant {args.variant} seed {args.seed}: loss {float(expected['expected.loss']):.6f}, "
          f"min greedy logit gap {gap:.6f}, rows emitting </s> {eos_rows}")
    print("greedy ids:", greedy_ids.tolist())
    if gap < args.min_gap or eos_rows:
        print(f"rejected: need a gap >= {args.min_gap} and no </s>", file=sys.stderr)
        return 2
    if args.dry_run:
        return 0

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(raw, f, indent=2, sort_keys=True)
        f.write("\n")
    tensors = [(n, stored[n]) for n, _ in cfg.weight_shapes()]
    if spec["tied_copies"]:
        tensors += [("encoder.embed_tokens.weight", stored["shared.weight"]),
                    ("decoder.embed_tokens.weight", stored["shared.weight"])]
    write_safetensors(os.path.join(args.out, "model.safetensors"), tensors, {"format": "pt"})

    case = [("input_ids", ids), ("attention_mask", am), ("labels", labels), ("prompt", prompt),
            ("decoder_input_ids", inp["decoder_input_ids"].numpy())]
    for k, v in expected.items():
        v = v.detach().numpy()
        case.append((k, v.astype(np.int64) if k == "expected.greedy_ids" else v.astype(np.float32)))
    write_safetensors(os.path.join(args.out, "case.safetensors"), case,
                      {"prompt_len": spec["prompt_len"], "greedy_steps": args.steps,
                       "variant": args.variant, "seed": args.seed})
    print(f"wrote {args.out}/config.json, model.safetensors, case.safetensors")
    return 0


def cmd_check(args):
    cfg, w = load_model(args.model)
    c, meta = read_safetensors(args.case)
    inp, prompt = case_inputs(c)
    want_dec = shift_right(inp["labels"], cfg.start_id)
    if not torch.equal(want_dec, inp["decoder_input_ids"]):
        print("decoder_input_ids are not the labels shifted right", file=sys.stderr)
        return 1
    gnames = sorted(k[len("expected.grad."):] for k in c if k.startswith("expected.grad.") and k != "expected.grad.prompt")
    steps = c["expected.greedy_ids"].shape[1] - 1
    got, gap = compute_expected(w, cfg, inp, prompt, gnames, steps)
    print(f"case {args.case} (metadata {meta}); min greedy logit gap {gap:.6f}")
    worst = 0.0
    ok = True
    for k in [k for k in c if k.startswith("expected.")]:
        want = c[k]
        g = got[k].detach().numpy()
        if g.shape != want.shape:
            print(f"{k}: shape {g.shape}, expected {want.shape}")
            ok = False
            continue
        if k == "expected.greedy_ids":
            mism = int((g != want).sum())
            print(f"{k:75s} {mism} mismatches")
            ok &= mism == 0
            continue
        scale = float(np.abs(want).max())
        err = float(np.abs(g - want.astype(np.float64)).max())
        rel = err / scale if scale else err
        worst = max(worst, rel)
        print(f"{k:75s} max err {err:.3e}  scale {scale:.3e}  rel {rel:.3e}")
        ok &= rel <= args.tol
    print(f"largest relative error {worst:.3e} (tolerance {args.tol:g}): {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="create a tiny random checkpoint and its case")
    m.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    m.add_argument("--seed", type=int, required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--steps", type=int, default=6, help="greedy steps")
    m.add_argument("--min-gap", type=float, default=1e-3,
                   help="refuse seeds whose greedy decoding has a closer best/second-best logit")
    m.add_argument("--dry-run", action="store_true", help="compute and report, write nothing")
    c = sub.add_parser("check", help="recompute a case's expected tensors")
    c.add_argument("--model", required=True)
    c.add_argument("--case", required=True)
    c.add_argument("--tol", type=float, default=1e-6, help="relative to each tensor's largest magnitude")
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    sys.exit(cmd_make(args) if args.cmd == "make" else cmd_check(args))


if __name__ == "__main__":
    main()
