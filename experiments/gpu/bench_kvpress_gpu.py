#!/usr/bin/env python3
"""kvpress (and kvforge) on the GPU, for issue 6's comparison; experiments/gpu/device_check.sh runs it there.

  press     kvpress's own compression step (`press.compress(...)`) on CUDA for every registered press that
            experiments/bench_presses.py maps to kvpress (its spec/kvpress mapping and its benchmark layer, reused:
            one decoder layer with the Llama-3.1-8B attention shape, 32 q heads, 8 kv heads, head_dim 128, hidden
            4096, seeded random weights and S random distinct hidden states, here in bf16 on CUDA), S = 4k, 32k,
            128k, ratio 0.5. CUDA events around the call (keys/values are cloned before, untimed), one warm-up,
            median of --repeat. Presses that need attention weights run where (1, 32, S, S) fits --attn-limit-gb.
  kvforge   `kvforge bench-press --synthetic-seq S --preset llama-3.1-8b --dtype bfloat16 --device cuda --backend
            both` for every registered press with the same spec as the kvpress row (explicit kvpress defaults): one
            process per length times every press (repeated --press), under --cell-timeout-s per press; presses it
            did not report (crash, hang) are retried one process each; joined with the `press` CSV (speed-ups).
  e2e       transformers + kvpress end to end on a random-weight Llama-3.1-8B-shaped model (bf16, built under
            `with torch.device("cuda")`, no download): prefill of a random context as kvpress's pipeline does it
            (`with press(model): model.model(ids, past_key_values=cache)`), then greedy decode of --decode-tokens
            with explicit position ids; prefill seconds, decode tokens/s, peak device memory
            (torch.cuda.max_memory_allocated), KV cache bytes after prefill; ratio 0 and 0.5.
  selftest  the three above at toy sizes on the CPU (what a machine without a GPU can check).

Every subcommand writes its CSV row by row (a run cut short keeps what it measured) and stops starting new cells
after --budget-s. kvpress comes from the wheels of scripts/gpu_wheels.sh; datasets / fire / cachetools (imported by
kvpress's __init__ for presses not measured here) are stubbed, with a note, when they are missing or fail to import.
"""
import argparse
import csv
import gc
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
import types

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
import bench_presses as bp  # noqa: E402  (also puts tests/fixtures on sys.path: the kvpress mapping)

SEQS = [131072, 32768, 4096]  # longest first: when a budget runs out, the short (least telling) cells are dropped
QUICK_SEQS = [32768, 4096]
STUBBED = []


def log(msg):
    print(f"[bench-kvpress-gpu {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def import_kvpress():
    """kvpress, with stand-ins for the optional modules its __init__ imports but no benchmarked press uses
    (DuoAttention, expected_attention_with_stats) when they are missing or fail to import (e.g. datasets against
    the image's pyarrow)."""
    for name in ("datasets", "fire", "cachetools"):
        try:
            __import__(name)
        except Exception as e:  # noqa: BLE001
            mod = types.ModuleType(name)
            mod.load_dataset = lambda *a, **k: (_ for _ in ()).throw(ImportError(f"{name} is a stub here"))
            mod.Fire = mod.load_dataset
            mod.LRUCache = lambda *a, **k: None
            mod.cached = lambda *a, **k: (lambda f: f)
            sys.modules[name] = mod
            STUBBED.append(f"{name} ({type(e).__name__}: {str(e)[:80]})")
    if STUBBED:
        log(f"note: stubbed {'; '.join(STUBBED)}: only presses not benchmarked here use them")
    import kvpress
    return kvpress


def versions():
    import importlib.metadata as md
    import torch
    import transformers

    v = {"torch": torch.__version__, "transformers": transformers.__version__}
    try:
        v["kvpress"] = md.version("kvpress")
    except md.PackageNotFoundError:
        v["kvpress"] = "?"
    if torch.cuda.is_available():
        v["gpu"] = torch.cuda.get_device_name()
    return v


class CsvOut:
    """Rows appended and flushed one at a time."""

    def __init__(self, path, fields):
        self.path, self.fields = pathlib.Path(path), fields
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.path, "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=fields, extrasaction="ignore")
        self.w.writeheader()
        self.f.flush()

    def row(self, r):
        self.w.writerow({k: fmt(r.get(k)) for k in self.fields})
        self.f.flush()


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    if isinstance(v, (list, tuple)):
        return ";".join(fmt(x) for x in v)
    return v


def load_presses(a):
    if getattr(a, "kvforge", None):
        return json.loads(subprocess.run([a.kvforge, "presses", "--json"], check=True, capture_output=True,
                                         text=True).stdout)
    return json.loads(pathlib.Path(a.presses).read_text())


def spec_for(p, cr):
    """(kvforge spec with kvpress's defaults written out, kvpress press tree or None, why not)."""
    node = bp.strip_params(bp.parse_spec(p["example"]), cr)
    tree, why = bp.build_kvpress(node, cr)
    if tree is None:
        return p["example"], None, why
    return bp.explicit_spec(tree, p["params"]), tree, None


class Timer:
    """CUDA events on a GPU (the device time between the two records), perf_counter on the CPU; both synchronise."""

    def __init__(self, device):
        import torch
        self.torch, self.cuda = torch, device.startswith("cuda")

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def __call__(self, fn):
        torch = self.torch
        self.sync()
        if self.cuda:
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0 = time.perf_counter()
            e0.record()
            res = fn()
            e1.record()
            torch.cuda.synchronize()
            return e0.elapsed_time(e1), (time.perf_counter() - t0) * 1e3, res
        t0 = time.perf_counter()
        res = fn()
        wall = (time.perf_counter() - t0) * 1e3
        return wall, wall, res


# ---------------------------------------------------------------------------------------------------- press

def cmd_press(a):
    import torch

    import_kvpress()
    dev, dt = a.device, getattr(torch, a.dtype)
    seqs = a.seqs or (QUICK_SEQS if a.quick else SEQS)
    cr = a.ratio
    presses = load_presses(a)
    v = versions()
    log(f"{len(presses)} presses, S {seqs}, ratio {cr}, {a.dtype} on {dev}; {v}")
    out = CsvOut(a.out, ["press", "S", "ratio", "dtype", "device", "kvpress_ms", "kvpress_wall_ms", "runs",
                         "runs_ms", "kept", "entries", "extra_peak_mib", "spec", "note", "kvpress", "transformers",
                         "torch", "gpu"])
    t_start = time.perf_counter()
    timer = Timer(dev)
    model = bp.make_model(max(seqs), a.seed, device=dev, dtype=dt)
    stop = False
    failed = 0
    for S in seqs:
        need_attn = [p for p in presses if p["needs_attentions"]]
        with_attn = bool(need_attn) and bp.attn_gb(S) < a.attn_limit_gb
        try:
            cap = bp.capture(model, S, a.seed, with_attn)
        except Exception as e:  # noqa: BLE001 (an out-of-memory or a transformers change: say so, go on)
            log(f"capture of S={S} failed: {type(e).__name__}: {e}")
            for p in presses:
                out.row(dict(v, press=p["shape"], S=S, ratio=cr, note=f"capture failed: {type(e).__name__}"))
            failed += len(presses)
            continue
        attn_full = cap.pop("attentions", None)
        if attn_full is not None:
            attn_full = attn_full.to(dt)
        for p in presses:
            row = dict(v, press=p["shape"], S=S, ratio=cr, dtype=a.dtype, device=dev)
            spec, tree, why = spec_for(p, cr)
            row["spec"] = spec
            if time.perf_counter() - t_start > a.budget_s:
                row["note"] = f"not run: --budget-s {a.budget_s:g} spent"
                stop = True
            elif tree is None:
                row["note"] = f"no kvpress counterpart ({why})"
            elif p["needs_attentions"] and attn_full is None:
                row["note"] = (f"needs attention weights (1, 32, S, S): {bp.attn_gb(S):.0f} GB in float32, over "
                               f"--attn-limit-gb {a.attn_limit_gb:g}")
            else:
                try:
                    row.update(time_press(bp.make_kvpress_runner(tree), cap,
                                          attn_full if p["needs_attentions"] else None, timer, a))
                except Exception as e:  # noqa: BLE001
                    row["note"] = f"failed: {type(e).__name__}: {str(e)[:200]}"
                    failed += 1
                    if dev.startswith("cuda"):
                        torch.cuda.empty_cache()
            out.row(row)
            log(f"S={S} {spec}: " + (f"{row['kvpress_ms']:.3f} ms (wall {row['kvpress_wall_ms']:.3f}, "
                                     f"{row['runs']} runs)" if "kvpress_ms" in row else row.get("note", "")))
        del cap, attn_full
        gc.collect()
        if dev.startswith("cuda"):
            torch.cuda.empty_cache()
        if stop:
            break
    log(f"wrote {a.out} ({time.perf_counter() - t_start:.0f} s); {failed} cells failed")
    return 1 if failed else 0


def time_press(runner, cap, attn, timer, a):
    """Median event time of kvpress's compress over --repeat runs after --warmup (a cold run slower than
    --slow-ms is kept as a measurement instead, and runs stop once a cell has taken --cell-budget-s)."""
    import torch

    module = cap["module"]
    state = {}

    def once():
        keys, values = cap["keys"].clone(), cap["values"].clone()  # some presses write in place; not timed
        if hasattr(module, "masked_key_indices"):
            module.masked_key_indices = None
        kwargs = dict(cap["kwargs"])
        with torch.no_grad():
            ms, wall, (ok, ov) = timer(lambda: runner(module, cap["hidden_states"], keys, values, attn, kwargs))
        B, H, S, _ = ok.shape
        masked = getattr(module, "masked_key_indices", None)
        state["kept"] = B * H * S - (0 if masked is None else int(masked[0].numel()))
        state["entries"] = cap["keys"].shape[0] * cap["keys"].shape[1] * cap["keys"].shape[2]
        return ms, wall

    cuda = timer.cuda
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t_cell = time.perf_counter()
    times, walls = [], []
    for i in range(a.warmup):
        ms, wall = once()
        if ms > a.slow_ms:  # too slow to waste: it counts
            times.append(ms)
            walls.append(wall)
            break
    while len(times) < a.repeat and (not times or time.perf_counter() - t_cell < a.cell_budget_s):
        ms, wall = once()
        times.append(ms)
        walls.append(wall)
    if hasattr(module, "masked_key_indices"):
        module.masked_key_indices = None
    res = {"kvpress_ms": statistics.median(times), "kvpress_wall_ms": statistics.median(walls), "runs": len(times),
           "runs_ms": times, "kept": state["kept"], "entries": state["entries"]}
    if cuda:
        res["extra_peak_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    return res


# ---------------------------------------------------------------------------------------------------- kvforge

def cmd_kvforge(a):
    import_kvpress()  # the kvpress objects give the explicit specs (the same parameters as the kvpress rows)
    seqs = a.seqs or (QUICK_SEQS if a.quick else SEQS)
    cr = a.ratio
    presses = load_presses(a)
    joined = {}
    if a.join and pathlib.Path(a.join).exists():
        for r in csv.DictReader(open(a.join)):
            if r.get("kvpress_ms"):
                joined[(r["press"], int(r["S"]))] = r
    out = CsvOut(a.out, ["press", "S", "ratio", "device", "dtype", "fused_ms", "reference_ms", "kvpress_ms",
                         "fused_vs_kvpress", "fused_vs_reference", "native", "kept", "kvpress_kept", "entries",
                         "runs_ms", "spec", "note"])
    log(f"{len(presses)} presses, S {seqs}, ratio {cr}, {a.dtype} on {a.device}, {len(joined)} kvpress rows to join")
    t_start = time.perf_counter()
    speedups = []
    done = failed = timed_out = 0
    def base_cmd(S):
        return [a.kvforge, "bench-press", "--synthetic-seq", str(S), "--preset", a.preset, "--dtype", a.dtype,
                "--device", a.device, "--compression-ratio", repr(cr), "--backend", "both", "--json",
                "--repeat", str(a.repeat), "--warmup", "1", "--seed", str(a.seed)]

    def record(row, p, S, by):
        nonlocal done
        f, ref = by["fused"], by["reference"]
        row.update(fused_ms=f["ms"], reference_ms=ref["ms"], native=f.get("native"), kept=f["kept"],
                   entries=f["entries"], runs_ms=f["runs_ms"])
        row["fused_vs_reference"] = ref["ms"] / f["ms"] if f["ms"] > 0 else None
        if row.get("kvpress_ms") and f["ms"] > 0:
            row["fused_vs_kvpress"] = row["kvpress_ms"] / f["ms"]
            speedups.append((row["fused_vs_kvpress"], p["shape"], S))
        done += 1

    for S in seqs:
        rows, todo = [], []
        for p in presses:
            spec, _, _ = spec_for(p, cr)
            row = {"press": p["shape"], "S": S, "ratio": cr, "device": a.device, "dtype": a.dtype, "spec": spec}
            k = joined.get((p["shape"], S))
            if k:
                row["kvpress_ms"], row["kvpress_kept"] = float(k["kvpress_ms"]), k["kept"]
            if p["needs_attentions"]:
                row["note"] = "needs attention weights, which a synthetic layer does not have"
            else:
                todo.append(len(rows))
            rows.append((p, row))
        # One kvforge process times every press of this length (one CUDA context, one synthetic layer: process
        # start and layer drawing are paid once, not per cell). Presses it did not report (a crash, a hang, a
        # failure) are retried one process per cell below, so one bad kernel costs its own cell only.
        left = a.budget_s - (time.perf_counter() - t_start)
        if todo and left >= 5:
            cmd = base_cmd(S)
            for i in todo:
                cmd += ["--press", rows[i][1]["spec"]]
            t0 = time.perf_counter()
            lines = []
            try:
                res = subprocess.run(cmd, capture_output=True, text=True,
                                     timeout=min(a.cell_timeout_s * len(todo), left))
                lines, tail = res.stdout.splitlines(), res.stderr.strip()[-300:]
            except subprocess.TimeoutExpired as e:
                out_ = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
                lines, tail = out_.splitlines(), "timed out"
            by_index = {}
            for line in lines:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                by_index.setdefault(todo[r["index"]], {})[r.get("backend", "error")] = r
            for i in list(todo):
                got = by_index.get(i, {})
                if "fused" in got and "reference" in got:
                    record(rows[i][1], rows[i][0], S, got)
                    todo.remove(i)
                elif "error" in got:
                    rows[i][1]["note"] = f"kvforge: {got['error']['error'][-300:]}"
                    failed += 1
                    todo.remove(i)
            log(f"S={S}: one process for {len(by_index)} presses in {time.perf_counter() - t0:.1f} s"
                + (f"; {len(todo)} left for one process each ({tail})" if todo else ""))
        for i in todo:  # what the batch did not report
            p, row = rows[i]
            left = a.budget_s - (time.perf_counter() - t_start)
            if left < 5:
                row["note"] = f"not run: --budget-s {a.budget_s:g} spent"
                continue
            cmd = base_cmd(S) + ["--press", row["spec"]]
            t0 = time.perf_counter()
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=min(a.cell_timeout_s, left))
                if res.returncode != 0:
                    row["note"] = f"kvforge failed ({res.returncode}): {res.stderr.strip()[-300:]}"
                    failed += 1
                else:
                    record(row, p, S, {r["backend"]: r for r in map(json.loads, res.stdout.splitlines())})
            except subprocess.TimeoutExpired:
                row["note"] = f"timed out after {min(a.cell_timeout_s, left):.0f} s"
                timed_out += 1
            row["note"] = (row.get("note", "") + f" (cell {time.perf_counter() - t0:.1f} s)").strip()
        for p, row in rows:
            out.row(row)
            log(f"S={S} {row['spec']}: fused {fmt(row.get('fused_ms'))} ms, reference {fmt(row.get('reference_ms'))} "
                f"ms, kvpress {fmt(row.get('kvpress_ms'))} ms {row.get('note', '')}")
    print(f"press cells measured: {done}; with a kvpress time: {len(speedups)}; failed: {failed}; over "
          f"--cell-timeout-s: {timed_out}")
    if speedups:
        xs = sorted(s for s, _, _ in speedups)
        worst = min(speedups)
        print(f"summary: fused vs kvpress on {a.device}: median {statistics.median(xs):.2f}x, worst {worst[0]:.2f}x "
              f"({worst[1]} S={worst[2]}), cells >= 10x: {sum(1 for x in xs if x >= 10)} of {len(xs)}")
    log(f"wrote {a.out} ({time.perf_counter() - t_start:.0f} s)")
    return 1 if failed else 0  # a cell over its time limit is a result (noted), not a failure


# ---------------------------------------------------------------------------------------------------- e2e

def cmd_e2e(a):
    import torch
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    kvpress = import_kvpress()
    dev = a.device
    cuda = dev.startswith("cuda")
    context = a.context or (16384 if a.quick else 131072)
    layers = a.layers or (4 if a.quick else 32)
    ntok = a.decode_tokens or (8 if a.quick else 32)
    v = versions()
    if a.tiny:  # selftest: the same code path at toy sizes
        cfg = LlamaConfig(vocab_size=1024, hidden_size=256, intermediate_size=512, num_hidden_layers=layers,
                          num_attention_heads=8, num_key_value_heads=2, head_dim=32, max_position_embeddings=4096)
    else:
        cfg = bp.llama_31_8b_config(128256, layers, tie_word_embeddings=False)  # Llama-3.1-8B: untied, 128256
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    prev = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, a.dtype))  # parameters created in bf16 directly
    try:
        with torch.device(dev):
            model = LlamaForCausalLM(cfg).eval()
    finally:
        torch.set_default_dtype(prev)
    timer = Timer(dev)
    timer.sync()
    weights = torch.cuda.memory_allocated() if cuda else sum(p.numel() * p.element_size() for p in model.parameters())
    log(f"model: {layers} layers, {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, "
        f"{weights / 2**30:.1f} GiB, built in {time.perf_counter() - t0:.1f} s; context {context}, decode {ntok}; {v}")
    out = CsvOut(a.out, ["framework", "press", "ratio", "context", "decode_tokens", "layers", "dtype", "device",
                         "prefill_s", "decode_tok_s", "decode_ms_per_token", "peak_mib", "weights_mib",
                         "kv_cache_mib", "kv_tokens_per_layer", "note", "kvpress", "transformers", "torch", "gpu"])
    g = torch.Generator(device="cpu").manual_seed(a.seed)
    ids = torch.randint(cfg.vocab_size, (1, context), generator=g).to(dev)
    cls = {"knorm": kvpress.KnormPress, "snapkv": kvpress.SnapKVPress}[a.press]
    t_start = time.perf_counter()
    failed = 0
    for r in a.ratios:
        row = dict(v, framework="transformers+kvpress", press=a.press, ratio=r, context=context, decode_tokens=ntok,
                   layers=layers, dtype=a.dtype, device=dev, weights_mib=weights / 2**20)
        if time.perf_counter() - t_start > a.budget_s:
            row["note"] = f"not run: --budget-s {a.budget_s:g} spent"
            out.row(row)
            continue
        press = cls(compression_ratio=r)
        cache = DynamicCache(config=model.config)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            with torch.no_grad():
                with press(model):  # kvpress's pipeline: prefill through the base model, compression in the hooks
                    _, prefill_ms, _ = timer(lambda: model.model(input_ids=ids, past_key_values=cache))
                kv_bytes = sum(l.keys.numel() * l.keys.element_size() + l.values.numel() * l.values.element_size()
                               for l in cache.layers)
                row["kv_tokens_per_layer"] = cache.get_seq_length(0)
                pos = torch.tensor([[context]], device=dev)
                nxt = torch.zeros((1, 1), dtype=torch.long, device=dev)

                def decode():
                    tok = nxt
                    for i in range(ntok):
                        o = model(input_ids=tok, past_key_values=cache, position_ids=pos + i, logits_to_keep=1)
                        tok = o.logits[:, -1].argmax(-1, keepdim=True)
                    return tok

                _, decode_ms, _ = timer(decode)
            row.update(prefill_s=prefill_ms / 1e3, decode_tok_s=ntok / (decode_ms / 1e3),
                       decode_ms_per_token=decode_ms / ntok, kv_cache_mib=kv_bytes / 2**20)
            if cuda:
                row["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        except Exception as e:  # noqa: BLE001 (out of memory, an API change: record it and go on)
            row["note"] = f"failed: {type(e).__name__}: {str(e)[:200]}"
            failed += 1
        del cache
        gc.collect()
        out.row(row)
        log(f"ratio {r}: prefill {fmt(row.get('prefill_s'))} s, decode {fmt(row.get('decode_tok_s'))} tok/s, peak "
            f"{fmt(row.get('peak_mib'))} MiB, KV {fmt(row.get('kv_cache_mib'))} MiB {row.get('note', '')}")
    log(f"wrote {a.out} ({time.perf_counter() - t_start:.0f} s)")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------------- selftest

def cmd_selftest(a):
    """All three subcommands at toy sizes on the CPU (this machine has no GPU), each checked for its rows."""
    import tempfile

    me = [sys.executable, str(pathlib.Path(__file__).resolve())]
    kvforge = a.kvforge or os.environ.get("KVFORGE") or str(pathlib.Path(
        os.environ.get("KVF_GPUCHECK_BUILD", "/tmp/kvf-gpucheck")) / "experiments" / "kvforge")
    with tempfile.TemporaryDirectory(prefix="kvf-selftest-") as tmp:
        t = pathlib.Path(tmp)
        runs = [
            ("press", [*me, "press", "--device", "cpu", "--dtype", "float32", "--seqs", "256", "--repeat", "1",
                       "--presses", str(ROOT / "experiments" / "gpu" / "presses.json"), "--out", str(t / "p.csv")]),
            ("kvforge", [*me, "kvforge", "--kvforge", kvforge, "--device", "cpu", "--dtype", "float32", "--seqs",
                         "256", "--repeat", "1", "--join", str(t / "p.csv"), "--out", str(t / "k.csv")]),
            ("e2e", [*me, "e2e", "--tiny", "--device", "cpu", "--dtype", "float32", "--context", "128", "--layers",
                     "2", "--decode-tokens", "4", "--out", str(t / "e.csv")]),
        ]
        bad = 0
        for name, cmd in runs:
            t0 = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True)
            sys.stdout.write(res.stdout)
            sys.stderr.write(res.stderr[-3000:])
            path = t / {"press": "p.csv", "kvforge": "k.csv", "e2e": "e.csv"}[name]
            rows = list(csv.DictReader(open(path))) if path.exists() else []
            col = {"press": "kvpress_ms", "kvforge": "fused_ms", "e2e": "decode_tok_s"}[name]
            timed = [r for r in rows if r.get(col)]
            ok = res.returncode == 0 and timed
            if name == "kvforge":  # every kvforge cell either measured or said why not
                ok = ok and all(r.get("fused_ms") or "attention" in r.get("note", "") for r in rows)
            if name == "press":
                ok = ok and all(r.get("kvpress_ms") or "attention" in r.get("note", "") or
                                "counterpart" in r.get("note", "") for r in rows)
            bad += not ok
            print(f"selftest {name}: {'ok' if ok else 'FAILED'} (rc {res.returncode}, {len(timed)} of {len(rows)} "
                  f"rows timed, {time.perf_counter() - t0:.0f} s)")
            for r in rows:
                if not r.get(col):
                    print(f"  {r.get('press', r.get('ratio'))} S={r.get('S', '')}: {r.get('note', '')}")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (S 4k and 32k; e2e: 16k context, 4 layers)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p, out):
        p.add_argument("--device", default="cuda")
        p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
        p.add_argument("--seed", type=int, default=2024)
        p.add_argument("--budget-s", type=float, default=1e9, help="start no new cell after this many seconds")
        p.add_argument("--out", default=out)

    p = sub.add_parser("press", help="kvpress's compression step on CUDA")
    common(p, "kvpress_press.csv")
    p.add_argument("--presses", default=str(ROOT / "experiments" / "gpu" / "presses.json"),
                   help="`kvforge presses --json` output (the committed copy: kvforge may not be built yet)")
    p.add_argument("--kvforge", help="ask this kvforge for the presses instead of --presses")
    p.add_argument("--seqs", type=lambda s: [int(x) for x in s.split(",")], help="S list, in run order (131072,32768,4096)")
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--repeat", type=int, default=5, help="timed runs per cell (median)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--slow-ms", type=float, default=2000.0, help="a warm-up slower than this counts as a run")
    p.add_argument("--cell-budget-s", type=float, default=10.0, help="no further runs once a cell took this long")
    p.add_argument("--attn-limit-gb", type=float, default=16.0,
                   help="presses needing attention weights run where (1, 32, S, S) float32 is under this")

    p = sub.add_parser("kvforge", help="kvforge bench-press per registered press, joined with the press CSV")
    common(p, "kvforge_press.csv")
    p.add_argument("--kvforge", required=True)
    p.add_argument("--join", help="the `press` CSV to join (kvpress_ms, speed-ups)")
    p.add_argument("--preset", default="llama-3.1-8b")
    p.add_argument("--seqs", type=lambda s: [int(x) for x in s.split(",")], help="S list, in run order (131072,32768,4096)")
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--cell-timeout-s", type=float, default=15.0)

    p = sub.add_parser("e2e", help="transformers+kvpress prefill/decode/peak memory on a random Llama-3.1-8B")
    common(p, "e2e_kvpress.csv")
    p.add_argument("--press", default="knorm", choices=["knorm", "snapkv"])
    p.add_argument("--ratios", type=lambda s: [float(x) for x in s.split(",")], default=[0.0, 0.5])
    p.add_argument("--context", type=int, help="context tokens (131072; --quick 16384)")
    p.add_argument("--layers", type=int, help="decoder layers (32; --quick 4)")
    p.add_argument("--decode-tokens", type=int, help="greedy tokens after the prefill (32; --quick 8)")
    p.add_argument("--tiny", action="store_true", help="a toy config (selftest)")

    p = sub.add_parser("selftest", help="the three at toy sizes on the CPU")
    p.add_argument("--kvforge", help="kvforge binary (default: $KVF_GPUCHECK_BUILD/experiments/kvforge)")

    a = ap.parse_args()
    for name in ("seqs",):
        if hasattr(a, name) and getattr(a, name) is None and a.quick:
            setattr(a, name, QUICK_SEQS)
    return {"press": cmd_press, "kvforge": cmd_kvforge, "e2e": cmd_e2e, "selftest": cmd_selftest}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main() or 0)
