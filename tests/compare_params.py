#!/usr/bin/env python3
"""compare_params.py A B TOL — do two charrnn model files hold the same
parameters within TOL? Reads the PARAMS section (type 3, little-endian f32;
docs/model-format.md) of each and prints the largest difference relative to
the largest parameter magnitude, max|a-b| / max|a|; exit 0 if <= TOL, 1 if
not (or the shapes differ). TOL 0 asks for bit-identical parameters.

compare_params.py --step BASE A B LR TOL — A and B each went one SGD step
of learning rate LR (clip 0) from BASE: are the two gradients, (BASE - X) /
LR, the same within TOL, tensor by tensor (the CONFIG section's tensor
table)? Prints the worst tensor's max|ga-gb| / max|ga|; exit as above."""
import struct
import sys


def sections(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"CHARRNN\0":
        sys.exit(f"{path}: not a charrnn model file")
    count = struct.unpack_from("<I", data, 12)[0]
    at, out = 16, {}
    for _ in range(count):
        typ, _flags, length = struct.unpack_from("<IIQ", data, at)
        out[typ] = data[at + 16:at + 16 + length]
        at += 16 + length + 4
    return out


def params(path):
    s = sections(path)
    if 3 not in s:
        sys.exit(f"{path}: no PARAMS section")
    return struct.unpack_from(f"<{len(s[3]) // 4}f", s[3])


def tensors(path):
    """(name, offset, count) of every tensor, from CONFIG's tensor table"""
    cfg = sections(path)[1]
    n, at, out = struct.unpack_from("<I", cfg, 36)[0], 40, []
    for _ in range(n):
        k = struct.unpack_from("<I", cfg, at)[0]
        name = cfg[at + 4:at + 4 + k].decode("ascii")
        off, rows, cols = struct.unpack_from("<QQQ", cfg, at + 4 + k)
        out.append((name, off, rows * cols))
        at += 4 + k + 24
    return out


def compare(a, b, tol):
    if len(a) != len(b):
        print(f"parameter counts differ: {len(a)} vs {len(b)}")
        sys.exit(1)
    scale = max(abs(x) for x in a) or 1.0
    diff = max(abs(x - y) for x, y in zip(a, b))
    rel = diff / scale
    print(f"{len(a)} parameters, max |a-b| = {diff:.3g}, relative {rel:.3g} (tolerance {tol:g})")
    sys.exit(0 if rel <= tol else 1)


def compare_step(base_path, a_path, b_path, lr, tol):
    base, a, b = params(base_path), params(a_path), params(b_path)
    if not len(base) == len(a) == len(b):
        print(f"parameter counts differ: {len(base)}, {len(a)}, {len(b)}")
        sys.exit(1)
    worst, at = -1.0, ""
    for name, off, n in tensors(base_path):
        ga = [(base[i] - a[i]) / lr for i in range(off, off + n)]
        gb = [(base[i] - b[i]) / lr for i in range(off, off + n)]
        rel = max(abs(x - y) for x, y in zip(ga, gb)) / (max(abs(x) for x in ga) or 1.0)
        if rel > worst:
            worst, at = rel, name
    print(f"gradients of {len(base)} parameters: worst tensor {at}, relative {worst:.3g} (tolerance {tol:g})")
    sys.exit(0 if worst <= tol else 1)


if len(sys.argv) == 7 and sys.argv[1] == "--step":
    compare_step(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6]))
elif len(sys.argv) == 4:
    compare(params(sys.argv[1]), params(sys.argv[2]), float(sys.argv[3]))
else:
    sys.exit(__doc__)
