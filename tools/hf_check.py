#!/usr/bin/env python3
"""Cross-checks dfm's GPT-2 or Llama against Hugging Face transformers.

Loads a dfm export (model.safetensors + config.json) into transformers'
GPT2LMHeadModel or LlamaForCausalLM (by the config's model_type), computes the mean cross entropy on the first step's windows
of a token file (dfm's documented data order: window w = tokens
[w*T, w*T + T] of the concatenated files), and compares it with the loss dfm
reported for step 1 in metrics.jsonl. Needs torch, transformers, safetensors.

usage: hf_check.py EXPORT_DIR TOKEN_FILE METRICS_JSONL GLOBAL_BATCH
"""
import json
import sys

import torch
from token_file import read_tokens
from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM
from safetensors.torch import load_file


def load_gpt2(export_dir):
    config = GPT2Config.from_pretrained(export_dir)
    model = GPT2LMHeadModel(config)
    state = load_file(f"{export_dir}/model.safetensors")
    missing, unexpected = model.transformer.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith(".attn.bias") and not m.endswith(".attn.masked_bias")]
    assert not missing and not unexpected, f"missing {missing}, unexpected {unexpected}"
    model.tie_weights()
    return model, config.n_positions


def load_llama(export_dir):
    # The export's names and layouts are LlamaForCausalLM's own: loaded as they are.
    model, info = LlamaForCausalLM.from_pretrained(export_dir, output_loading_info=True, torch_dtype=torch.float32)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    return model, model.config.max_position_embeddings


def main():
    export_dir, token_file, metrics, global_batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    model_type = json.load(open(f"{export_dir}/config.json"))["model_type"]
    model, T = (load_llama if model_type == "llama" else load_gpt2)(export_dir)
    model.eval().double()

    tokens = read_tokens(token_file)
    n = len(tokens)
    windows = [[tokens[(w * T + i) % n] for i in range(T + 1)] for w in range(global_batch)]
    batch = torch.tensor(windows)
    with torch.no_grad():
        logits = model(batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
    dfm_loss = json.loads(open(metrics).readline())["loss"]
    rel = abs(loss.item() - dfm_loss) / abs(loss.item())
    print(f"transformers loss {loss.item():.7f}  dfm loss {dfm_loss:.7f}  relative difference {rel:.2e}")
    sys.exit(0 if rel < 1e-5 else 1)


if __name__ == "__main__":
    main()
