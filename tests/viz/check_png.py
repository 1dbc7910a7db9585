#!/usr/bin/env python3
"""check_png.py SHOT.png [--maps] [--layers N]: the screenshot is not blank (grey-level spread), with --maps it
shows the kept colour somewhere, and with --layers a vertical scan through its middle crosses exactly N kept maps (runs of the overview's kept/evicted colours).
Pure Python (zlib): decodes 8-bit RGB/RGBA non-interlaced PNGs, which Qt writes."""
import argparse
import struct
import sys
import zlib


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"FAIL: {path} is not a PNG")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                sys.exit(f"FAIL: unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})")
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(h):
        f = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return w, h, rows


KEPT, EVICTED = (31, 86, 168), (232, 232, 232)


def on_kept_scale(p):
    """Close to the kept gradient (evicted grey .. kept blue), as drawn by the overview."""
    best = 1e9
    for k in range(0, 21):
        t = k / 20
        q = [EVICTED[i] + (KEPT[i] - EVICTED[i]) * t for i in range(3)]
        best = min(best, sum((p[i] - q[i]) ** 2 for i in range(3)) ** 0.5)
    return best < 12


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("png")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--min-std", type=float, default=15.0)
    ap.add_argument("--maps", action="store_true", help="require the kept colour somewhere (a map or bar was drawn)")
    a = ap.parse_args()
    w, h, rows = read_png(a.png)
    grey = [sum(p) / 3 for r in rows[::4] for p in r[::4]]
    mean = sum(grey) / len(grey)
    std = (sum((g - mean) ** 2 for g in grey) / len(grey)) ** 0.5
    kept_px = sum(1 for r in rows[::4] for p in r[::4] if sum((p[i] - KEPT[i]) ** 2 for i in range(3)) < 300)
    print(f"{a.png}: {w}x{h}, grey mean {mean:.1f}, std {std:.1f}, kept-blue samples {kept_px}")
    if std < a.min_std:
        sys.exit(f"FAIL: the screenshot looks blank (grey std {std:.1f} < {a.min_std})")
    if (a.maps or a.layers is not None) and kept_px == 0:
        sys.exit("FAIL: no kept-token colour anywhere: no map was drawn")
    if a.layers is not None:
        counts = []
        for x in (w * 2 // 5, w // 2, w * 3 // 5):
            runs, cur = 0, 0
            for y in range(h):
                if on_kept_scale(rows[y][x]):
                    cur += 1
                else:
                    runs += cur >= 3
                    cur = 0
            runs += cur >= 3
            counts.append(runs)
        print(f"maps crossed by vertical scans: {counts}")
        if a.layers not in counts:
            sys.exit(f"FAIL: expected {a.layers} layer maps, the scans crossed {counts}")
    print("ok")


if __name__ == "__main__":
    main()
