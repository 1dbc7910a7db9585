#!/usr/bin/env python3
"""run_doc_example.py FORMATS_MD TRACE: runs the Python example of the "Trace" section of docs/formats.md
(the ```python block after the `<!-- trace-example -->` marker) on TRACE, copied to run.kvtrace in a temporary
folder, so the documentation cannot drift from the format."""
import os
import re
import shutil
import sys
import tempfile

doc, trace = sys.argv[1], sys.argv[2]
text = open(doc, encoding="utf-8").read()
m = re.search(r"<!-- trace-example -->\s*```python\n(.*?)```", text, re.S)
if not m:
    sys.exit(f"FAIL: no ```python block after <!-- trace-example --> in {doc}")
code = m.group(1)
with tempfile.TemporaryDirectory() as d:
    shutil.copy(trace, os.path.join(d, "run.kvtrace"))
    os.chdir(d)
    ns = {"__name__": "__main__"}
    exec(compile(code, f"{doc} (trace example)", "exec"), ns)
for name in ("meta", "scores", "kept", "token_ids"):
    if name not in ns:
        sys.exit(f"FAIL: the example defines no '{name}'")
L, H, S = ns["kept"].shape
assert ns["scores"].shape == (L, H, S), ns["scores"].shape
assert ns["token_ids"].shape == (S,)
assert len(ns["meta"]["tokens"]) == S and ns["meta"]["layers"] == L and ns["meta"]["kv_heads"] == H
print(f"ok: the docs example ran on a ({L}, {H}, {S}) trace")
