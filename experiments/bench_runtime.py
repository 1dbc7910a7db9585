#!/usr/bin/env python3
"""Runtime benchmark: prefill and decode tokens/s, kvforge vs transformers, same machine, same run.

Both load SmolLM2-135M-Instruct from the same GGUF in fp32 and run on the CPU with the same thread count,
on the same deterministic prompt ids ((i * 7919 + 13) % vocab), decoding greedily for a fixed number of tokens
(no EOS stop). Median of --repeats timed runs after one warm-up. Prints a table and writes it as markdown.
"""
import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"))
import common  # noqa: E402


def bench_transformers(gguf, lengths, decode_tokens, repeats, threads):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    rows = []
    for n in lengths:
        ids = torch.tensor([[(i * 7919 + 13) % vocab for i in range(n)]])
        pre, dec = [], []
        for r in range(repeats + 1):
            with torch.inference_mode():
                t0 = time.perf_counter()
                out = model(ids, use_cache=True, logits_to_keep=1)
                tp = time.perf_counter() - t0
                past = out.past_key_values
                logits = out.logits
                t0 = time.perf_counter()
                for _ in range(decode_tokens):
                    nxt = logits[:, -1].argmax(-1, keepdim=True)
                    out = model(nxt, past_key_values=past, use_cache=True)
                    past, logits = out.past_key_values, out.logits
                td = time.perf_counter() - t0
            if r > 0:
                pre.append(tp)
                dec.append(td)
        p, d = statistics.median(pre), statistics.median(dec)
        rows.append({"engine": "transformers", "prompt_tokens": n, "prefill_s": p, "decode_s": d,
                     "prefill_tok_s": n / p, "decode_tok_s": decode_tokens / d})
        print(f"  transformers n={n}: prefill {n / p:.1f} tok/s, decode {decode_tokens / d:.1f} tok/s", flush=True)
    return rows, transformers.__version__, torch.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kvforge", default="build/experiments/kvforge")
    ap.add_argument("--prompt-tokens", default="512,2048")
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", help="write the table as markdown here")
    a = ap.parse_args()
    gguf = common.smollm2_gguf()
    lengths = [int(x) for x in a.prompt_tokens.split(",")]

    load_before = os.getloadavg()
    print("kvforge ...", flush=True)
    cmd = [a.kvforge, "bench-runtime", "--model", str(gguf), "--prompt-tokens", *map(str, lengths),
           "--decode-tokens", str(a.decode_tokens), "--repeats", str(a.repeats), "--threads", str(a.threads)]
    res = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    ours = {r["prompt_tokens"]: r for r in map(json.loads, res.stdout.splitlines())}
    print("transformers ...", flush=True)
    theirs_rows, tf_ver, torch_ver = bench_transformers(gguf, lengths, a.decode_tokens, a.repeats, a.threads)
    theirs = {r["prompt_tokens"]: r for r in theirs_rows}
    load_after = os.getloadavg()

    lines = [
        f"SmolLM2-135M-Instruct (Q4_1 GGUF dequantised to fp32), CPU, {a.threads} threads, "
        f"{platform.processor() or platform.machine()}; decode = {a.decode_tokens} greedy tokens after the prefill; "
        f"median of {a.repeats} runs after a warm-up. transformers {tf_ver}, torch {torch_ver}. "
        f"1-minute load average before/after: {load_before[0]:.2f}/{load_after[0]:.2f} "
        f"({os.cpu_count()} cores; above ~0.5 other work was competing and the numbers are unreliable).",
        "",
        "| prompt tokens | kvforge prefill tok/s | transformers prefill tok/s | ratio | "
        "kvforge decode tok/s | transformers decode tok/s | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in lengths:
        o, t = ours[n], theirs[n]
        lines.append(f"| {n} | {o['prefill_tok_s']:.1f} | {t['prefill_tok_s']:.1f} | "
                     f"{o['prefill_tok_s'] / t['prefill_tok_s']:.2f}x | {o['decode_tok_s']:.1f} | "
                     f"{t['decode_tok_s']:.1f} | {o['decode_tok_s'] / t['decode_tok_s']:.2f}x |")
    table = "\n".join(lines)
    print()
    print(table)
    if a.out:
        out = pathlib.Path(a.out)
        body = ("# Runtime benchmark (no press)\n\nRegenerate with `make bench` "
                "(runs `experiments/bench_runtime.py`).\n\n" + table + "\n")
        tmp = out.with_suffix(".tmp")
        tmp.write_text(body)
        tmp.rename(out)


if __name__ == "__main__":
    main()
