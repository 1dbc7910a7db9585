#!/usr/bin/env python3
"""Rewrites a CUDA source of kvforge's so g++ compiles it against kvf_cuda_emu (tests/cuda_emu/kvf_cuda_emu.hpp).

Two rewrites, nothing else:
  k<<<g, b, smem, s>>>(args)      ->  ::kvf_emu::launch(k, "k", g, b, smem, s)(args)
  extern __shared__ T name[];     ->  T* name = ::kvf_emu::dynamic_shared<T>();
A #line directive keeps compiler messages pointing at the original file. Usage: emu_source.py IN.cu OUT.cpp
"""
import os
import re
import sys

LAUNCH = re.compile(r"([A-Za-z_][\w:]*(?:<[^<>;{}]*>)?)\s*<<<(.*?)>>>", re.S)
DYNAMIC_SHARED = re.compile(r"extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([\w:]+)\s+(\w+)\s*\[\s*\]\s*;")


def rewrite(text):
    text, shared = DYNAMIC_SHARED.subn(r"\1* \2 = ::kvf_emu::dynamic_shared<\1>();", text)
    text, launches = LAUNCH.subn(lambda m: '::kvf_emu::launch(%s, "%s", %s)' % (m.group(1), m.group(1).split("<")[0],
                                                                                 m.group(2)), text)
    if "<<<" in text or ">>>" in text:
        raise SystemExit("emu_source.py: a launch it could not rewrite is left")
    return text, launches, shared


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        text, _, _ = rewrite(f.read())
    tmp = dst + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write('#line 1 "%s"\n' % os.path.abspath(src))
        f.write(text)
    os.replace(tmp, dst)


if __name__ == "__main__":
    main()
