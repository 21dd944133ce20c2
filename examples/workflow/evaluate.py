#!/usr/bin/env python3
"""The `evaluate` job of train-eval.yaml: scores the model `train` printed on the test rows `prepare` printed
(both from GRID_NEEDS), against always predicting the training mean. Prints one JSON line,
{"test_mse", "baseline_mse", "device"}, and exits 1 when the model is no better than the baseline, so the workflow
fails when training did not learn.
"""
import json
import os
import sys

needs = json.loads(os.environ["GRID_NEEDS"])
data = json.loads(needs["prepare"])
model = json.loads(needs["train"].splitlines()[-1])
w, b = model["weights"], model["bias"]
mean = sum(r["y"] for r in data["train"]) / len(data["train"])
test = data["test"]
mse = sum((sum(a * c for a, c in zip(r["x"], w)) + b - r["y"]) ** 2 for r in test) / len(test)
baseline = sum((mean - r["y"]) ** 2 for r in test) / len(test)
print(json.dumps({"test_mse": mse, "baseline_mse": baseline, "device": model["device"]}))
if not mse < baseline / 2:
    sys.exit(f"the model (test MSE {mse:.4f}) is not better than the baseline ({baseline:.4f})")
