#!/usr/bin/env python3
"""An independent Llama, in NumPy (float64), written from docs/models.md.

Reads a dfm export (model.safetensors + config.json, LlamaForCausalLM's names
and layouts), computes the mean cross entropy of step STEP's windows of a
token file (dfm's data order, docs/training.md: window w = tokens
[w*T, w*T + T] of the file, wrapping; step s takes windows (s-1)*GLOBAL_BATCH
on), and compares it with the loss dfm reported for that step in
metrics.jsonl — so an export after k steps is checked against step k + 1 of
a longer run (with a learning rate that does not depend on the run's
length). Also checks that the export holds exactly the tensors
LlamaForCausalLM expects, with their shapes.

usage: llama_reference.py EXPORT_DIR TOKEN_FILE METRICS_JSONL GLOBAL_BATCH [STEP]
Exit 0 when the losses agree within 1e-5 relative.

       llama_reference.py --gradient-signs EXPORT_0 EXPORT_1 TOKEN_FILE METRICS_JSONL GLOBAL_BATCH WEIGHT_DECAY
checks dfm's backward instead: EXPORT_0 holds the initial weights, EXPORT_1
the weights after one AdamW step on step 1's windows. That first step moves
each weight by -lr g / (|g| + eps) (bias-corrected moments of a single
gradient; clipping rescales g, which leaves its sign) after the decay
w *= 1 - lr weight_decay of the matrices, so the move's sign is minus the
sign of dLoss/dw. Central differences of this file's loss give that sign for
a sample of every tensor's elements. Exit 0 when every sign agrees.
"""
import json
import struct
import sys

import numpy as np

from token_file import read_tokens


def read_safetensors(path):
    """name -> array, and the names in file order (the format's spec: an
    8-byte little-endian header length, a JSON header, the raw data)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    dtypes = {"F32": np.float32, "F16": np.float16, "BF16": None}
    tensors, order = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "BF16":
            values = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            values = np.frombuffer(raw, dtype=dtypes[info["dtype"]])
        tensors[name] = values.astype(np.float64).reshape(info["shape"])
        order.append((begin, name))
    return tensors, [name for _, name in sorted(order)]


def expected_tensors(c):
    C, H, KV, F, V = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["intermediate_size"], c["vocab_size"]
    D = c.get("head_dim", C // H)
    shapes = {"model.embed_tokens.weight": [V, C]}
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        shapes.update({
            p + "input_layernorm.weight": [C],
            p + "self_attn.q_proj.weight": [H * D, C],
            p + "self_attn.k_proj.weight": [KV * D, C],
            p + "self_attn.v_proj.weight": [KV * D, C],
            p + "self_attn.o_proj.weight": [C, H * D],
            p + "post_attention_layernorm.weight": [C],
            p + "mlp.gate_proj.weight": [F, C],
            p + "mlp.up_proj.weight": [F, C],
            p + "mlp.down_proj.weight": [C, F],
        })
    shapes["model.norm.weight"] = [C]
    if not c.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = [V, C]
    return shapes


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, positions, theta):
    """x: [T, heads, D]; element i turns with i + D/2 by p * theta^(-2i/D)."""
    D = x.shape[-1]
    half = D // 2
    angles = positions[:, None] * theta ** (-2.0 * np.arange(half) / D)  # [T, D/2]
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def silu(g):
    return g / (1.0 + np.exp(-g))


def forward(w, c, ids):
    C, H, KV = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    D = c.get("head_dim", C // H)
    eps, theta = c["rms_norm_eps"], c["rope_theta"]
    T = len(ids)
    positions = np.arange(T, dtype=np.float64)
    h = w["model.embed_tokens.weight"][ids]
    causal = np.tril(np.ones((T, T), dtype=bool))
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        a = rmsnorm(h, w[p + "input_layernorm.weight"], eps)
        q = rope((a @ w[p + "self_attn.q_proj.weight"].T).reshape(T, H, D), positions, theta)
        k = rope((a @ w[p + "self_attn.k_proj.weight"].T).reshape(T, KV, D), positions, theta)
        v = (a @ w[p + "self_attn.v_proj.weight"].T).reshape(T, KV, D)
        group = H // KV
        out = np.empty((T, H, D))
        for head in range(H):
            g = head // group
            scores = q[:, head, :] @ k[:, g, :].T / np.sqrt(D)
            scores = np.where(causal, scores, -np.inf)
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            out[:, head, :] = (scores / scores.sum(axis=1, keepdims=True)) @ v[:, g, :]
        h = h + out.reshape(T, H * D) @ w[p + "self_attn.o_proj.weight"].T
        m = rmsnorm(h, w[p + "post_attention_layernorm.weight"], eps)
        gate = m @ w[p + "mlp.gate_proj.weight"].T
        up = m @ w[p + "mlp.up_proj.weight"].T
        h = h + (silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    head_weight = w["model.embed_tokens.weight"] if c.get("tie_word_embeddings", False) else w["lm_head.weight"]
    return rmsnorm(h, w["model.norm.weight"], eps) @ head_weight.T


def cross_entropy(logits, targets):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(targets)), targets]


def mean_loss(weights, config, tokens, first_window, global_batch):
    T, n = config["max_position_embeddings"], len(tokens)
    losses = []
    for window in range(first_window, first_window + global_batch):
        seq = np.array([tokens[(window * T + i) % n] for i in range(T + 1)])
        losses.append(cross_entropy(forward(weights, config, seq[:-1]), seq[1:]))
    return float(np.mean(np.concatenate(losses)))


def gradient_signs(argv):
    before_dir, after_dir, token_file, metrics, global_batch, weight_decay = argv
    global_batch, weight_decay = int(global_batch), float(weight_decay)
    config = json.load(open(f"{before_dir}/config.json"))
    before, order = read_safetensors(f"{before_dir}/model.safetensors")
    after, _ = read_safetensors(f"{after_dir}/model.safetensors")
    tokens = read_tokens(token_file)
    lr = json.loads(open(metrics).readline())["lr"]
    rng = np.random.default_rng(0)
    checked = wrong = 0
    h = 1e-5
    for name in order:
        w = before[name]
        decay = weight_decay if w.ndim >= 2 else 0.0
        for flat in rng.choice(w.size, size=min(6, w.size), replace=False):
            index = np.unravel_index(flat, w.shape)
            saved = w[index]
            w[index] = saved + h
            plus = mean_loss(before, config, tokens, 0, global_batch)
            w[index] = saved - h
            minus = mean_loss(before, config, tokens, 0, global_batch)
            w[index] = saved
            grad = (plus - minus) / (2 * h)
            if abs(grad) < 1e-6:
                continue  # too small for its sign to be sure (FD error ~1e-10, AdamW's eps 1e-8)
            move = after[name][index] - saved * (1 - lr * decay)
            checked += 1
            if np.sign(move) != -np.sign(grad):
                wrong += 1
                print(f"{name}{list(index)}: dLoss/dw = {grad:.3e} but the step moved it by {move:.3e}")
    print(f"gradient signs: {checked - wrong} of {checked} sampled elements agree")
    sys.exit(0 if wrong == 0 and checked > 0 else 1)


def main():
    if sys.argv[1] == "--gradient-signs":
        gradient_signs(sys.argv[2:])
    export_dir, token_file, metrics, global_batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    step = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    config = json.load(open(f"{export_dir}/config.json"))
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"], config
    weights, order = read_safetensors(f"{export_dir}/model.safetensors")
    expected = expected_tensors(config)
    assert order == list(expected), f"tensors {order}\nexpected {list(expected)}"
    for name, shape in expected.items():
        assert list(weights[name].shape) == shape, f"{name}: shape {list(weights[name].shape)}, expected {shape}"

    tokens = read_tokens(token_file)
    T, n = config["max_position_embeddings"], len(tokens)
    losses = []
    for window in range((step - 1) * global_batch, step * global_batch):
        seq = np.array([tokens[(window * T + i) % n] for i in range(T + 1)])
        losses.append(cross_entropy(forward(weights, config, seq[:-1]), seq[1:]))
    loss = float(np.mean(np.concatenate(losses)))
    dfm_loss = json.loads(open(metrics).readlines()[step - 1])["loss"]
    rel = abs(loss - dfm_loss) / abs(loss)
    print(f"reference loss {loss:.7f}  dfm loss {dfm_loss:.7f}  relative difference {rel:.2e}: " + ("agree" if rel < 1e-5 else "DIFFER"))
    sys.exit(0 if rel < 1e-5 else 1)


if __name__ == "__main__":
    main()
