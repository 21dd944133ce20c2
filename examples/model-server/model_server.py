#!/usr/bin/env python3
"""A warm model server: a Grid worker that loads a PyTorch model once and keeps it, and what it learns, in memory
between requests (the protocol of proto/worker.ts: one JSON request per line on stdin, one JSON reply per line on
stdout, {"id", "result"} or {"id", "error"}).

Each session gets its own worker on its owner node (README "Warm workers"), so a session's model is its own: it
answers with the state it kept from the session's earlier requests. Payloads:

  {"x": [4 floats]}                          -> {"y": prediction, ...}
  {"learn": {"x": [4 floats], "y": float}, "steps": N}  -> N SGD steps on this worker's model: {"loss", "updates", ...}

Every reply also says what it kept: `served` (requests this worker answered), `updates` (SGD steps taken), `pid`,
`device` and `loadSeconds` (paid once, by the first request). The model is the linear model of
examples/pytorch/train.py; MODEL_PATH names a state_dict it saved (train.py --save), else it starts at zero.
Runs on cuda:0 when Grid gave the worker a GPU (worker: {gpus: 1}), else on the CPU.
"""
import json
import os
import sys
import time

t0 = time.time()
import torch  # noqa: E402  (the slow part, paid once per worker)

device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
model = torch.nn.Linear(4, 1).to(device)
if os.environ.get("MODEL_PATH"):
    model.load_state_dict(torch.load(os.environ["MODEL_PATH"], map_location=device))
else:
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
load_seconds = time.time() - t0
served = 0
updates = 0


def vector(v):
    if not isinstance(v, list) or len(v) != 4 or not all(isinstance(a, (int, float)) for a in v):
        raise ValueError("x must be a list of 4 numbers")
    return torch.tensor([v], dtype=torch.float32, device=device)


def answer(payload):
    global updates
    if not isinstance(payload, dict):
        raise ValueError('the payload must be an object: {"x": [...]} or {"learn": {"x": [...], "y": ...}}')
    if "learn" in payload:
        x, y = vector(payload["learn"].get("x")), torch.tensor([[float(payload["learn"]["y"])]], device=device)
        steps = int(payload.get("steps", 1))
        if not 1 <= steps <= 1000:
            raise ValueError("steps must be 1 to 1000")
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            updates += 1
        return {"loss": loss.item()}
    with torch.no_grad():
        return {"y": model(vector(payload.get("x"))).item()}


for line in sys.stdin:
    req = json.loads(line)
    served += 1
    try:
        result = answer(req.get("payload"))
        result.update({"served": served, "updates": updates, "pid": os.getpid(), "device": str(device),
                       "session": req.get("session"), "loadSeconds": round(load_seconds, 3)})
        reply = {"id": req["id"], "result": result}
    except Exception as e:  # a bad request fails alone; the worker and its state stay
        reply = {"id": req["id"], "error": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
