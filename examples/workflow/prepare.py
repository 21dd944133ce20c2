#!/usr/bin/env python3
"""The `prepare` job of train-eval.yaml: makes a regression data set and prints it as one JSON document,
{"train": [{"x": [4 floats], "y": float}], "test": [...]}.

The data set is small enough to travel in GRID_NEEDS (a job's stdout, its first 64 KiB) to the jobs that need it, so
the workflow needs no shared filesystem; a real pipeline writes its data to shared storage and prints where.
"""
import json
import random
import sys

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 240
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 7
rnd = random.Random(seed)
w = [rnd.uniform(-3, 3) for _ in range(4)]
b = rnd.uniform(-1, 1)
data = []
for _ in range(rows):
    x = [round(rnd.uniform(-1, 1), 4) for _ in range(4)]
    data.append({"x": x, "y": round(sum(a * c for a, c in zip(x, w)) + b + rnd.gauss(0, 0.05), 4)})
cut = rows * 4 // 5
print(json.dumps({"train": data[:cut], "test": data[cut:]}, separators=(",", ":")))
print(f"prepared {cut} training and {rows - cut} test rows", file=sys.stderr)
