#!/usr/bin/env python3
"""Press benchmark: the compression step of every registered press, kvforge (fused executor and libtorch
reference path) vs kvpress's own press, on identical tensors.

One decoder layer with the Llama-3.1-8B attention shape (hidden 4096, 32 query heads, 8 KV heads, head_dim 128,
llama3 RoPE), seeded random weights, batch 1. Its input is S random, distinct hidden states (a vocabulary of S
tokens, a random permutation of them); the layer's prefill (experiments/dump_layer_snapshot.py's capture_layer)
gives the post-RoPE keys/values, cos/sin and the kwargs kvpress's presses read. The layer's MLP is replaced by a
zero module (it runs after the attention and does not change the captured tensors; it only cost prefill time).

For every press in `kvforge presses --json`, the spec is its example with the parameters dropped so that
kvpress's defaults apply (except random.seed, think.key_channel_compression_ratio and per_layer's ratios), the
kvpress press is built from it (tests/fixtures/make_press_fixtures.py's parse_spec/build), and kvforge gets the
same spec with every parameter written out from the kvpress object (so both run the same parameters).
kvpress: `press.compress(module, hidden_states, keys, values, attentions, kwargs)` under torch.no_grad, timed
with time.perf_counter on fresh copies of keys/values (copying is not timed). kvforge: `kvforge bench-press
--backend both --json` (steady_clock around RuntimePress::compress). Same thread count on both sides.

Writes a markdown table (atomically) with the median and worst speed-ups; progress lines go to stderr.
"""
import argparse
import dataclasses
import gc
import json
import os
import pathlib
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
from dump_layer_snapshot import capture_layer, save_snapshot  # noqa: E402
from make_press_fixtures import build, kvpress_classes, parse_spec  # noqa: E402

NUM_LAYERS = 2  # pyramidkv's budget divides by (num_hidden_layers - 1); layer 0 is the one benchmarked
LAYER = 0
# Parameters kept from the registry's example instead of kvpress's default (the default would make the
# press a no-op or is not a default at all).
KEEP = {("random", "seed"), ("think", "key_channel_compression_ratio")}


def log(msg):
    print(f"[bench-presses {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------- specs

def strip_params(node, cr):
    """The example's spec tree with parameters dropped (kvpress defaults), except KEEP and per_layer ratios."""
    name, kids, args = node
    kept = {k: v for k, v in args.items() if (name, k) in KEEP}
    if name == "per_layer":
        kept["compression_ratios"] = "[" + ",".join([repr(float(cr))] * NUM_LAYERS) + "]"
    return name, [strip_params(k, cr) for k in kids], kept


def build_kvpress(node, cr):
    """(press object tree) for a spec tree: [(name, obj, kids)], or (None, why)."""
    classes = kvpress_classes()
    name, kids, args = node
    if name == "think":  # kvforge's think(X) is kvpress's ComposedPress([X, ThinKPress]): build both parts
        inner, why = build_kvpress(kids[0], cr)
        if inner is None:
            return None, why
        think, why = build((name, [], args), classes, cr, NUM_LAYERS)
        return (None, why) if think is None else ((name, think, [inner]), None)
    obj, why = build(node, classes, cr, NUM_LAYERS)
    if obj is None:
        return None, why
    sub = []
    if kids:
        inner, why = build_kvpress(kids[0], cr)
        if inner is None:
            return None, why
        sub = [(inner[0], obj.press, inner[2])]  # the object the wrapper really holds
    return (name, obj, sub), None


def fmt_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(fmt_value(x) for x in v) + "]"
    return repr(v)


def explicit_spec(tree, registry_params):
    """kvforge spec text with every registry parameter the kvpress object has written out."""
    names = {p.split(".", 1)[1] for p in registry_params}
    name, obj, kids = tree
    fields = {f.name for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else set()
    args = [f"{k}={fmt_value(getattr(obj, k))}" for k in sorted(fields & names) if k != "compression_ratio"]
    parts = [explicit_spec(k, registry_params) for k in kids] + args
    return name + (f"({', '.join(parts)})" if parts else "")


def make_kvpress_runner(tree):
    """A callable (module, hs, keys, values, attn, kwargs) -> (keys, values) running the kvpress press."""
    name, obj, kids = tree
    if name == "think":
        inner = make_kvpress_runner(kids[0])

        def run(module, hs, k, v, attn, kw):
            k, v = inner(module, hs, k, v, attn, kw)
            return obj.compress(module, hs, k, v, attn, kw)
        return run
    if type(obj).__name__ == "PerLayerCompressionPress":  # what its forward_hook does for this layer
        def run(module, hs, k, v, attn, kw):
            original = obj.press.compression_ratio
            obj.press.compression_ratio = obj.compression_ratios[module.layer_idx]
            try:
                return obj.press.compress(module, hs, k, v, attn, kw)
            finally:
                obj.press.compression_ratio = original
        return run
    return obj.compress


# ---------------------------------------------------------------------------------------------------- layer

def llama_31_8b_config(vocab_size, num_layers, tie_word_embeddings=True):
    """Llama-3.1-8B's config (attention shape, MLP, llama3 RoPE) with another vocabulary and layer count."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=4096, intermediate_size=14336, num_hidden_layers=num_layers,
                       num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=131072,
                       rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=tie_word_embeddings,
                       rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})


def make_model(max_seq, seed, device="cpu", dtype=None):
    """The benchmark layer (see the module docstring); device/dtype for experiments/gpu/bench_kvpress_gpu.py."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = llama_31_8b_config(max_seq, NUM_LAYERS)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(dtype or torch.float32).eval()

    class ZeroMLP(torch.nn.Module):
        def forward(self, x):
            return torch.zeros_like(x)

    for layer in model.model.layers:
        layer.mlp = ZeroMLP()
    # Only layer 0 runs (the config still says NUM_LAYERS, which pyramidkv's budget reads).
    model.model.layers = model.model.layers[:1]
    gc.collect()
    return model


def capture(model, S, seed, attentions):
    import torch

    g = torch.Generator().manual_seed(seed + S)
    ids = torch.randperm(model.config.vocab_size, generator=g)[:S].unsqueeze(0).to(model.device)
    model.config._attn_implementation = "eager" if attentions else "sdpa"
    t0 = time.perf_counter()
    cap = capture_layer(model, ids, LAYER, attentions=attentions)
    model.config._attn_implementation = "sdpa"  # kvpress's head-wise presses refuse eager
    cap["module"].rotary_emb = cap["rotary_emb"]
    log(f"prefill of S={S}{' (eager, with attention weights)' if attentions else ''}: "
        f"{time.perf_counter() - t0:.1f} s")
    return cap


def attn_gb(S, heads=32):
    return heads * S * S * 4 / 1e9


# ---------------------------------------------------------------------------------------------------- timing

def time_kvpress(runner, cap, attn, warmup_under_ms, repeat):
    """Median ms and kept entries. The first (cold) run is an untimed warm-up when it took less than
    warmup_under_ms, else it is the first timed run (the same rule as `kvforge bench-press --warmup-under-ms`)."""
    import torch

    module = cap["module"]
    state = {}

    def once():
        keys, values = cap["keys"].clone(), cap["values"].clone()  # some presses write in place; not timed
        if hasattr(module, "masked_key_indices"):
            module.masked_key_indices = None
        kwargs = dict(cap["kwargs"])
        with torch.no_grad():
            t0 = time.perf_counter()
            ok, ov = runner(module, cap["hidden_states"], keys, values, attn, kwargs)
            dt = (time.perf_counter() - t0) * 1e3
        B, H, S, _ = ok.shape
        masked = getattr(module, "masked_key_indices", None)
        state["kept"] = B * H * S - (0 if masked is None else int(masked[0].numel()))
        return dt

    times, warm = [], 0
    first = once()
    if first < warmup_under_ms:
        warm = 1
    else:
        times.append(first)
    while len(times) < repeat:
        times.append(once())
    if hasattr(module, "masked_key_indices"):
        module.masked_key_indices = None
    return statistics.median(times), state["kept"], warm


def time_kvforge(kvforge, snapshot, spec, cr, threads, warmup_under_ms, repeat, cache_mode="compact"):
    """Both backends into a compact cache; with cache_mode="masked" the fused one only, selecting without writing
    rows (kvpress's AdaKV keeps the full cache and masks: that is the like-for-like step)."""
    cmd = [kvforge, "bench-press", "--in", str(snapshot), "--press", spec, "--compression-ratio", repr(cr),
           "--backend", "both" if cache_mode == "compact" else "fused", "--cache-mode", cache_mode, "--json",
           "--threads", str(threads), "--warmup-under-ms", repr(warmup_under_ms), "--repeat", str(repeat)]
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return {r["backend"]: r for r in map(json.loads, res.stdout.splitlines())}


# ---------------------------------------------------------------------------------------------------- report

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fmt_ms(x):
    return "—" if x is None else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")


def fmt_x(x):
    return "—" if x is None else f"{x:.2f}x"


def render(rows, skips, info, done):
    sp = [r["fused_vs_kvpress"] for r in rows if r.get("fused_vs_kvpress")]
    sr = [r["fused_vs_reference"] for r in rows if r.get("fused_vs_reference")]
    out = ["# Press benchmark: kvforge fused vs reference vs kvpress", ""]
    if not done:
        out += ["**Partial: the run that writes this file is still going (or was interrupted).**", ""]
    out += [
        "The compression step only (scores, selection, gather of the kept keys/values) of every registered press, "
        "on one layer with the Llama-3.1-8B attention shape (hidden 4096, 32 query heads, 8 KV heads, "
        "head_dim 128, GQA, llama3 RoPE), seeded random weights, batch 1, S random distinct hidden states, "
        f"{info['dtype']}, CPU. kvpress: `press.compress(...)` in Python under `torch.no_grad()`; kvforge: "
        "`kvforge bench-press --backend both` (`RuntimePress::compress`, reference = unfused libtorch ops, "
        "fused = the compiled executor). Identical tensors (one layer snapshot), identical parameters "
        "(kvpress defaults; the exact spec is in the table), "
        f"{info['threads']} threads on both sides. Wall clock, "
        f"{'median of ' + str(info['repeat']) + ' runs' if info['repeat'] > 1 else 'one run'} per cell and side, "
        f"after one untimed warm-up run where a cold run took less than {info['warmup_under_ms']:g} ms (else the "
        "cold run is the measurement; column W says which: k/r/f = kvpress/reference/fused warmed up). "
        "Speed-up = kvpress ms / fused ms (and reference ms / fused ms). Kernel build: the kvforge binary given by "
        "--kvforge (Release).",
        "",
        f"- Machine: {info['cpu']}, {info['cores']} cores, {info['mem_gib']:.0f} GiB; load average before the run "
        f"{info['load_before']}, after {info.get('load_after', '—')}; 1-minute load after each cell "
        f"{min(r['load1'] for r in rows) if rows else 0:.2f}–{max(r['load1'] for r in rows) if rows else 0:.2f}, "
        f"median {statistics.median([r['load1'] for r in rows]) if rows else 0:.2f} (shared machine; the 2 "
        "benchmark threads are the only load when it is near 2).",
        f"- Versions: kvpress {info['kvpress']}, transformers {info['transformers']}, torch {info['torch']}.",
        f"- Command (from the repository root): `{info['command']}`",
        f"- Wall time of the whole run: {info.get('elapsed_min', 0):.1f} min.",
        "",
    ]
    if sp:
        worst = min(rows, key=lambda r: r.get("fused_vs_kvpress") or float("inf"))
        best = max(rows, key=lambda r: r.get("fused_vs_kvpress") or 0)
        per_press = {}
        for r in rows:
            if r.get("fused_vs_kvpress"):
                per_press.setdefault(r["shape"], []).append(r["fused_vs_kvpress"])
        below3 = sorted(s for s, v in per_press.items() if min(v) < 3)
        out += [
            "## Summary", "",
            f"- Fused vs kvpress: median speed-up **{statistics.median(sp):.2f}x** over {len(sp)} cells; "
            f"worst {worst['fused_vs_kvpress']:.2f}x ({worst['shape']}, ratio {worst['ratio']}, S={worst['S']}); "
            f"best {best['fused_vs_kvpress']:.2f}x ({best['shape']}, ratio {best['ratio']}, S={best['S']}).",
        ]
        for S in sorted({r["S"] for r in rows}):
            v = [r["fused_vs_kvpress"] for r in rows if r["S"] == S and r.get("fused_vs_kvpress")]
            if v:
                out.append(f"  - S={S}: median {statistics.median(v):.2f}x, worst {min(v):.2f}x over {len(v)} cells.")
        if sr:
            out.append(f"- Fused vs reference: median {statistics.median(sr):.2f}x, worst {min(sr):.2f}x; "
                       f"cells where fused is slower than reference: {sum(1 for x in sr if x < 1)} of {len(sr)}.")
        above3 = sorted(s for s, v in per_press.items() if min(v) >= 3)
        out += [
            f"- Target (fused >= 3x kvpress for every press, median >= 5x): "
            f"every press >= 3x in every cell: **{'yes' if not below3 else 'no'}** "
            f"({len(above3)} of {len(per_press)} presses reach 3x in every cell: "
            f"{', '.join(above3) if above3 else 'none'}); "
            f"median >= 5x: **{'yes' if statistics.median(sp) >= 5 else 'no'}**.",
            "",
            "Per press (all lengths and ratios measured):",
            "",
            "| press | cells | fused vs kvpress: worst | median | fused vs reference: worst | median |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        order = {}
        for r in rows:
            order.setdefault(r["shape"], r["order"])
        for shape in sorted(per_press, key=order.get):
            v = per_press[shape]
            ref = [r["fused_vs_reference"] for r in rows if r["shape"] == shape and r.get("fused_vs_reference")]
            out.append(f"| {shape} | {len(v)} | {min(v):.2f}x | {statistics.median(v):.2f}x | "
                       f"{min(ref):.2f}x | {statistics.median(ref):.2f}x |")
        out.append("")
    out += ["## Results", "",
            "| press | ratio | S | kvpress ms | reference ms | fused ms | fused vs kvpress | fused vs reference | W | "
            "kvforge spec |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in sorted(rows, key=lambda r: (r["S"], r["order"], r["ratio"])):
        note = "" if r.get("kept_match", True) else " (kept count differs from kvpress!)"
        out.append(f"| {r['shape']} | {r['ratio']} | {r['S']} | {fmt_ms(r.get('kvpress_ms'))} | "
                   f"{fmt_ms(r.get('reference_ms'))} | {fmt_ms(r.get('fused_ms'))} | {fmt_x(r.get('fused_vs_kvpress'))} | "
                   f"{fmt_x(r.get('fused_vs_reference'))} | {r.get('warm', '')} | `{r['spec']}`{note} |")
    masked = [r for r in rows if r.get("fused_masked_ms")]
    if masked:
        out += ["", "## Head-wise presses in masked mode (like for like with kvpress)", "",
                "kvpress's AdaKV keeps the whole cache and records which entries attention must skip; kvforge's "
                "default writes a compacted ragged cache (the memory is really freed), which moves the kept keys "
                "and values. `--cache-mode masked` is kvpress's behaviour: the fused executor selects and writes "
                "nothing else. These rows are not in the summary above.", "",
                "| press | ratio | S | kvpress ms | fused compact ms | fused masked ms | masked vs kvpress |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for r in sorted(masked, key=lambda r: (r["S"], r["order"], r["ratio"])):
            out.append(f"| {r['shape']} | {r['ratio']} | {r['S']} | {fmt_ms(r.get('kvpress_ms'))} | "
                       f"{fmt_ms(r['fused_ms'])} | {fmt_ms(r['fused_masked_ms'])} | "
                       f"{fmt_x(r.get('fused_masked_vs_kvpress'))} |")
    if skips:
        out += ["", "## Not measured", ""]
        out += [f"- {s}" for s in skips]
    return "\n".join(out) + "\n"


def write_atomic(path, text):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------- main

def parse_list(text, conv):
    return [conv(x) for x in text.split(",") if x.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kvforge", default=str(ROOT / "build" / "experiments" / "kvforge"))
    ap.add_argument("--seqs", default="8192,32768", help="sequence lengths S")
    ap.add_argument("--ratios", default="0.25,0.5,0.75", help="compression ratios")
    ap.add_argument("--ratios-at", action="append", default=[], metavar="S=R,R",
                    help="other ratios at one length, e.g. 32768=0.5 (repeatable)")
    ap.add_argument("--presses", help="only these registry shapes (comma-separated, e.g. knorm,adakv(snapkv))")
    ap.add_argument("--attn-limit-gb", type=float, default=8.0,
                    help="presses needing attention weights (1, 32, S, S) float32 run only where these are smaller "
                         "than this many GB (1e9 bytes)")
    ap.add_argument("--attn-seq", type=int, default=4096,
                    help="an extra length for those presses when no --seqs length fits (0 = none)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup-under-ms", type=float, default=2000.0,
                    help="one untimed warm-up run per cell and side when a cold run takes less than this")
    ap.add_argument("--cell-budget-s", type=float, default=300.0,
                    help="when the first ratio of a press at a length (0.5 when listed) takes longer than this "
                         "in all (kvpress + kvforge), the other ratios are skipped at that length")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per cell and side (median reported)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--quick", action="store_true", help="smoke run: S=1024, ratio 0.5")
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench-presses.md"))
    ap.add_argument("--json-out", help="also write the raw rows here")
    ap.add_argument("--render-from", metavar="JSON", help="only rewrite --out from a --json-out file of an earlier run")
    a = ap.parse_args()
    if a.render_from:
        d = json.loads(pathlib.Path(a.render_from).read_text())
        skips = [x.replace("; the scoring cost does not depend on the ratio)", ")") for x in d["skipped"]]
        write_atomic(a.out, render(d["rows"], skips, d["info"], done=True))
        log(f"wrote {a.out} from {a.render_from}")
        return
    py = pathlib.Path(sys.executable)
    try:
        py = py.relative_to(ROOT) if py.is_relative_to(ROOT) else pathlib.Path("python")
    except ValueError:
        py = pathlib.Path("python")
    command = f"{py} experiments/bench_presses.py " + shlex.join(sys.argv[1:])

    import importlib.metadata
    import torch
    import transformers

    torch.set_num_threads(a.threads)
    seqs = [1024] if a.quick else parse_list(a.seqs, int)
    ratios = [0.5] if a.quick else parse_list(a.ratios, float)
    ratios_at = {}
    for item in a.ratios_at:
        s, r = item.split("=", 1)
        ratios_at[int(s)] = parse_list(r, float)
    presses = json.loads(subprocess.run([a.kvforge, "presses", "--json"], check=True, capture_output=True,
                                        text=True).stdout)
    if a.presses:
        want = {x.strip() for x in a.presses.split(";" if ";" in a.presses else ",")}
        presses = [p for p in presses if p["shape"] in want or p["shape"].split("(")[0] in want]
    needs_attn = [p for p in presses if p["needs_attentions"]]
    plain = [p for p in presses if not p["needs_attentions"]]

    # Which presses run at which length (attention presses only where the weights fit).
    plan = []  # (S, with_attentions, [presses])
    attn_fit = [S for S in seqs if attn_gb(S) < a.attn_limit_gb]
    skips = []
    for S in seqs:
        fits = S in attn_fit
        group = plain + (needs_attn if fits else [])
        plan.append((S, fits and bool(needs_attn), group))
        if not fits:
            for p in needs_attn:
                skips.append(f"{p['shape']} at S={S}: its attention weights (1, 32, S, S) float32 are "
                             f"{attn_gb(S):.1f} GB, over the {a.attn_limit_gb:g} GB limit (kvpress needs them "
                             f"materialised; eager attention needs several times that to produce them).")
    if needs_attn and not attn_fit and a.attn_seq and not a.quick:
        plan.append((a.attn_seq, True, needs_attn))
        skips.append(f"{', '.join(p['shape'] for p in needs_attn)} measured at S={a.attn_seq} instead "
                     f"({attn_gb(a.attn_seq):.1f} GB of attention weights).")

    load = os.getloadavg()
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": a.threads,
            "mem_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
            "load_before": " / ".join(f"{x:.2f}" for x in load), "kvpress": importlib.metadata.version("kvpress"),
            "transformers": transformers.__version__, "torch": torch.__version__, "command": command,
            "repeat": a.repeat, "warmup_under_ms": a.warmup_under_ms,
            "dtype": "float32"}
    rows = []
    t_start = time.perf_counter()
    log(f"{len(presses)} presses, lengths {[p[0] for p in plan]}, threads {a.threads}, load {info['load_before']}")
    log("building the layer (Llama-3.1-8B attention shape, random weights) ...")
    model = make_model(max(p[0] for p in plan), a.seed)
    with tempfile.TemporaryDirectory(prefix="kvf-bench-presses-") as tmp:
        for S, with_attn, group in plan:
            cap = capture(model, S, a.seed, with_attn)
            # Presses that can use attention weights (snapkv, tova) read them when the snapshot has them, and
            # kvpress's when they are passed: only the presses that need them get them, on both sides.
            attn_full = cap.pop("attentions", None)
            snap = pathlib.Path(tmp) / f"layer_S{S}.safetensors"
            save_snapshot(snap, cap, model.config, LAYER)
            snap_attn = None
            if attn_full is not None:
                snap_attn = pathlib.Path(tmp) / f"layer_S{S}_attn.safetensors"
                save_snapshot(snap_attn, dict(cap, attentions=attn_full), model.config, LAYER)
            for p in group:
                cell_ratios = sorted(ratios_at.get(S, ratios), key=lambda r: (r != 0.5, r))
                for ci, cr in enumerate(cell_ratios):
                    t_cell = time.perf_counter()
                    node = strip_params(parse_spec(p["example"]), cr)
                    tree, why = build_kvpress(node, cr)
                    row = {"shape": p["shape"], "ratio": cr, "S": S, "order": presses.index(p)}
                    if tree is None:
                        msg = f"{p['shape']}: no kvpress counterpart ({why}); kvforge only, example parameters."
                        if msg not in skips:
                            skips.append(msg)
                        spec = p["example"]
                    else:
                        spec = explicit_spec(tree, p["params"])
                    row["spec"] = spec
                    attn = attn_full if p["needs_attentions"] else None
                    warm = ""
                    if tree is not None:
                        row["kvpress_ms"], row["kvpress_kept"], w = time_kvpress(
                            make_kvpress_runner(tree), cap, attn, a.warmup_under_ms, a.repeat)
                        warm += "k" if w else ""
                    ours = time_kvforge(a.kvforge, snap_attn if p["needs_attentions"] else snap, spec, cr,
                                        a.threads, a.warmup_under_ms, a.repeat)
                    warm += ("r" if ours["reference"]["warmup"] else "") + ("f" if ours["fused"]["warmup"] else "")
                    row["warm"] = warm or "none"
                    row["reference_ms"] = ours["reference"]["ms"]
                    row["fused_ms"] = ours["fused"]["ms"]
                    row["kvforge_kept"] = ours["fused"]["kept"]
                    row["kvforge_spec"] = ours["fused"]["press"]
                    if "kvpress_ms" in row:
                        row["fused_vs_kvpress"] = row["kvpress_ms"] / row["fused_ms"]
                        row["kept_match"] = row["kvpress_kept"] == row["kvforge_kept"]
                    row["fused_vs_reference"] = row["reference_ms"] / row["fused_ms"]
                    if p["shape"].startswith("adakv("):  # kvpress masks; time kvforge's masked mode too
                        masked = time_kvforge(a.kvforge, snap_attn if p["needs_attentions"] else snap, spec, cr,
                                              a.threads, a.warmup_under_ms, a.repeat, cache_mode="masked")
                        row["fused_masked_ms"] = masked["fused"]["ms"]
                        if "kvpress_ms" in row:
                            row["fused_masked_vs_kvpress"] = row["kvpress_ms"] / row["fused_masked_ms"]
                    row["cell_s"] = time.perf_counter() - t_cell
                    row["load1"] = os.getloadavg()[0]
                    rows.append(row)
                    log(f"S={S} cr={cr} {spec}: kvpress {fmt_ms(row.get('kvpress_ms'))} ms, reference "
                        f"{fmt_ms(row['reference_ms'])} ms, fused {fmt_ms(row['fused_ms'])} ms -> "
                        f"{fmt_x(row.get('fused_vs_kvpress'))} vs kvpress, {fmt_x(row['fused_vs_reference'])} vs "
                        f"reference{'' if row.get('kept_match', True) else ' [KEPT COUNT DIFFERS: kvpress %d, kvforge %d]' % (row['kvpress_kept'], row['kvforge_kept'])}")
                    info["elapsed_min"] = (time.perf_counter() - t_start) / 60
                    write_atomic(a.out, render(rows, skips, info, done=False))
                    if a.json_out:
                        write_atomic(a.json_out, json.dumps({"info": info, "rows": rows, "skipped": skips}, indent=1))
                    if ci == 0 and row["cell_s"] > a.cell_budget_s and len(cell_ratios) > 1:
                        rest = ", ".join(f"{r:g}" for r in cell_ratios[1:])
                        skips.append(f"{p['shape']} at S={S}, ratios {rest}: skipped for time (the ratio {cr:g} "
                                     f"cell took {row['cell_s']:.0f} s > --cell-budget-s {a.cell_budget_s:g}).")
                        log(skips[-1])
                        break
            del cap, attn_full
            snap.unlink()
            if snap_attn is not None:
                snap_attn.unlink()
            gc.collect()
    info["elapsed_min"] = (time.perf_counter() - t_start) / 60
    info["load_after"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    text = render(rows, skips, info, done=True)
    write_atomic(a.out, text)
    if a.json_out:
        write_atomic(a.json_out, json.dumps({"info": info, "rows": rows, "skipped": skips}, indent=1))
    sys.stdout.write(text)
    log(f"wrote {a.out} ({info['elapsed_min']:.1f} min)")


if __name__ == "__main__":
    main()
