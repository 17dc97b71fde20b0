"""Reads adapters written by `shlpt-vk export --format peft` the way PEFT
loads a prompt-tuning adapter, with Debian's PyTorch and NumPy only (no
safetensors or peft package): the safetensors header parsed by hand, the
prompt loaded into the torch.nn.Embedding that PEFT's PromptEmbedding is,
with load_state_dict(strict=True) as set_peft_model_state_dict does. With
--npy, the .npy export of the same task must hold the same values.

usage: /usr/bin/python3 tools/peft-check/read_adapter.py ADAPTER_DIR... [--npy NPY_DIR]
"""
import json
import os
import struct
import sys

import numpy as np
import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        if e["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {e['dtype']}, not F32")
        s, t = e["data_offsets"]
        a = np.frombuffer(b[8 + n + s : 8 + n + t], dtype="<f4").reshape(e["shape"])
        tensors[name] = torch.from_numpy(a.copy())
    return meta, tensors


def main(argv):
    npy = None
    if "--npy" in argv:
        i = argv.index("--npy")
        npy = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    if not argv:
        raise SystemExit(__doc__)
    for d in argv:
        cfg = json.load(open(os.path.join(d, "adapter_config.json")))
        assert cfg["peft_type"] == "PROMPT_TUNING" and cfg["task_type"] == "SEQ_2_SEQ_LM", cfg
        meta, sd = read_safetensors(os.path.join(d, "adapter_model.safetensors"))
        total = cfg["num_virtual_tokens"] * cfg["num_transformer_submodules"]
        emb = torch.nn.Embedding(total, cfg["token_dim"])
        emb.load_state_dict({"weight": sd["prompt_embeddings"]}, strict=True)
        line = f"{d}: prompt_embeddings {tuple(emb.weight.shape)} {emb.weight.dtype}, metadata {meta}"
        if npy:
            task = os.path.basename(os.path.normpath(d))
            a = torch.from_numpy(np.load(os.path.join(npy, task + ".npy")))
            if not torch.equal(a, emb.weight.detach()):
                raise SystemExit(f"{d}: the .npy export differs")
            line += ", equal to the .npy export"
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
