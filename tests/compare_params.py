#!/usr/bin/env python3
"""compare_params.py A B TOL — do two charrnn model files hold the same
parameters within TOL? Reads the PARAMS section (type 3, little-endian f32;
docs/model-format.md) of each and prints the largest difference relative to
the largest parameter magnitude, max|a-b| / max|a|; exit 0 if <= TOL, 1 if
not (or the shapes differ). TOL 0 asks for bit-identical parameters."""
import struct
import sys


def params(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"CHARRNN\0":
        sys.exit(f"{path}: not a charrnn model file")
    count = struct.unpack_from("<I", data, 12)[0]
    at = 16
    for _ in range(count):
        typ, _flags, length = struct.unpack_from("<IIQ", data, at)
        if typ == 3:
            return struct.unpack_from(f"<{length // 4}f", data, at + 16)
        at += 16 + length + 4
    sys.exit(f"{path}: no PARAMS section")


a, b, tol = params(sys.argv[1]), params(sys.argv[2]), float(sys.argv[3])
if len(a) != len(b):
    print(f"parameter counts differ: {len(a)} vs {len(b)}")
    sys.exit(1)
scale = max(abs(x) for x in a) or 1.0
diff = max(abs(x - y) for x, y in zip(a, b))
rel = diff / scale
print(f"{len(a)} parameters, max |a-b| = {diff:.3g}, relative {rel:.3g} (tolerance {tol:g})")
sys.exit(0 if rel <= tol else 1)
