#!/usr/bin/env python3
"""Dump one decoder layer's press inputs from a transformers model as a kvforge layer snapshot.

The snapshot (docs/formats.md) holds what a press may read at that layer after the prefill of `text`:
hidden_states (after input_layernorm), post-RoPE keys and values, cos/sin, inv_freq, position_ids, q_proj,
o_proj (+ q_bias, q_norm) and, with --attentions, the eager attention weights. Apply a press to it with
`kvforge compress --in LAYER.safetensors --press SPEC --compression-ratio R --out RESULT.safetensors`.

As a library: `capture_layer(model, input_ids, layer_idx, attentions)` returns the tensors, and
`save_snapshot(path, captured, model.config, layer_idx)` writes them (atomically).
"""
import argparse
import json
import os
import pathlib
import sys


def capture_layer(model, input_ids, layer_idx: int, attentions: bool = False) -> dict:
    """Runs the prefill of input_ids (B, T) and returns layer `layer_idx`'s press inputs (and the module)."""
    import torch

    stack = model.model.language_model if hasattr(model.model, "language_model") else model.model
    attn = stack.layers[layer_idx].self_attn
    got = {}

    def hook(module, args, kwargs, output):
        got["hidden_states"] = kwargs.get("hidden_states", args[0] if args else None).detach().clone()
        cos, sin = kwargs["position_embeddings"]
        got["cos"], got["sin"] = cos.detach().clone(), sin.detach().clone()
        cache = kwargs["past_key_values"]
        got["keys"] = cache.layers[layer_idx].keys.detach().clone()
        got["values"] = cache.layers[layer_idx].values.detach().clone()
        if attentions:
            if output[1] is None:
                raise SystemExit("no attention weights: load the model with attn_implementation='eager'")
            got["attentions"] = output[1].detach().float().clone()
        got["kwargs"] = {k: v for k, v in kwargs.items() if k != "past_key_values"}
        return output

    handle = attn.register_forward_hook(hook, with_kwargs=True)
    try:
        from transformers import DynamicCache

        with torch.no_grad():
            stack(input_ids=input_ids, past_key_values=DynamicCache(config=model.config), use_cache=True)
    finally:
        handle.remove()
    B, T = input_ids.shape
    got["position_ids"] = torch.arange(T).unsqueeze(0).expand(B, T).contiguous()
    got["inv_freq"] = stack.rotary_emb.inv_freq.detach().float().clone()
    got["module"] = attn
    got["rotary_emb"] = stack.rotary_emb
    return got


def snapshot_tensors(captured: dict) -> dict:
    attn = captured["module"]
    t = {k: captured[k].contiguous() for k in ("hidden_states", "keys", "values", "cos", "sin", "inv_freq",
                                                "position_ids")}
    t["q_proj"] = attn.q_proj.weight.detach().contiguous()
    t["o_proj"] = attn.o_proj.weight.detach().contiguous()
    if attn.q_proj.bias is not None:
        t["q_bias"] = attn.q_proj.bias.detach().contiguous()
    if getattr(attn, "q_norm", None) is not None:
        t["q_norm"] = attn.q_norm.weight.detach().contiguous()
    if "attentions" in captured:
        t["attentions"] = captured["attentions"].contiguous()
    return t


def save_snapshot(path, captured: dict, config, layer_idx: int):
    from safetensors.torch import save_file

    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    meta = {"kvforge_snapshot": "1", "config": config.to_json_string(use_diff=False), "layer_idx": str(layer_idx)}
    save_file(snapshot_tensors(captured), str(tmp), metadata=meta)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a transformers checkpoint folder")
    ap.add_argument("--gguf-file", help="load this GGUF file inside --model (transformers' GGUF loader)")
    ap.add_argument("--text", help="the prefill text (default: read --text-file)")
    ap.add_argument("--text-file")
    ap.add_argument("--layer", type=int, default=0)
    ap.add_argument("--attentions", action="store_true", help="also store eager attention weights")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    text = a.text if a.text is not None else pathlib.Path(a.text_file).read_text(encoding="utf-8")
    kw = {"gguf_file": a.gguf_file} if a.gguf_file else {}
    tok = AutoTokenizer.from_pretrained(a.model, **kw)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32,
                                                 attn_implementation="eager" if a.attentions else "sdpa", **kw)
    ids = tok(text, return_tensors="pt").input_ids
    n = model.config.num_hidden_layers
    if not 0 <= a.layer < n:
        sys.exit(f"--layer {a.layer} is out of range (the model has {n} layers)")
    print(f"prefilling {ids.shape[1]} tokens ...", file=sys.stderr)
    save_snapshot(a.out, capture_layer(model.eval(), ids, a.layer, a.attentions), model.config, a.layer)
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
