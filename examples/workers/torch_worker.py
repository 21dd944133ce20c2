#!/usr/bin/env python3
"""A warm PyTorch worker: loads a model onto its GPU once, then serves requests without reloading.

Grid gives the worker exactly its GPUs (CUDA_VISIBLE_DEVICES, by UUID), so torch sees them as cuda:0.. and
torch.cuda.device_count() equals the worker's `gpus`. Request payload: {"x": [floats]}; result: the model's output,
the GPU's name, and how long the model took to load (once) and to answer (each time).
"""
import json
import sys
import time

t0 = time.time()
import torch  # noqa: E402  (the slow part a warm worker pays once)

device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 8)).to(device).eval()
load_s = time.time() - t0
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
for line in sys.stdin:
    req = json.loads(line)
    t = time.time()
    try:
        x = torch.tensor(req["payload"].get("x", [0.0] * 1024), dtype=torch.float32, device=device).reshape(1, -1)
        with torch.no_grad():
            y = model(x).squeeze(0).tolist()
        reply = {"id": req["id"], "result": {"y": y, "gpu": gpu, "devices": torch.cuda.device_count(),
                                              "loadSeconds": load_s, "answerSeconds": time.time() - t}}
    except Exception as e:  # the request fails, the worker stays
        reply = {"id": req["id"], "error": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
