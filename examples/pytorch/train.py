#!/usr/bin/env python3
"""A small PyTorch training run that uses the GPUs Grid gives it, and the CPU when it has none.

Grid sets CUDA_VISIBLE_DEVICES to the task's GPUs (by UUID, CUDA_DEVICE_ORDER=PCI_BUS_ID), so torch sees exactly
those as cuda:0.. and a task that asked for no GPU sees none. This script trains a linear model on a synthetic
regression data set for a few steps, on cuda:0 (every given GPU with DataParallel when there are several) or the CPU.

Progress (the device, then the loss every few steps) goes to stderr; stdout is one JSON line, the result:
{"device", "gpus", "steps", "loss", "weights", "bias"}, so that a workflow's next job gets it in GRID_NEEDS.

  gridctl run -- python3 examples/pytorch/train.py --steps 50           # on CPU, wherever there is room
  gridctl run --gpus 1 -- python3 examples/pytorch/train.py --steps 500 # on a free GPU somewhere in the cluster
  ... train.py --needs prepare     # in a workflow: the data set is the stdout of the job `prepare` (GRID_NEEDS)
  ... train.py --save model.pt     # also write the model's state_dict (the model server can load it: MODEL_PATH)
"""
import argparse
import json
import os
import random
import sys

import torch

FEATURES = 4


def synthetic(n, seed):
    """Rows y = x.w + b + noise, with fixed true weights: the same data on every node for the same seed."""
    rnd = random.Random(seed)
    w, b = [1.5, -2.0, 0.5, 3.0], 0.25
    rows = []
    for _ in range(n):
        x = [rnd.uniform(-1, 1) for _ in range(FEATURES)]
        rows.append({"x": x, "y": sum(a * c for a, c in zip(x, w)) + b + rnd.gauss(0, 0.05)})
    return rows


def load_data(args):
    if args.needs is not None:  # a workflow job: the data set is the stdout of the job it needs
        needs = json.loads(os.environ.get("GRID_NEEDS", "{}"))
        if args.needs not in needs:
            sys.exit(f"GRID_NEEDS has no job {args.needs!r} (it has {sorted(needs)}): add it to this job's needs")
        return json.loads(needs[args.needs])["train"]
    if args.data is not None:
        with open(args.data) as f:
            return json.load(f)["train"]
    return synthetic(args.rows, args.seed)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100, help="optimizer steps (default 100)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate of Adam (default 0.1)")
    p.add_argument("--rows", type=int, default=512, help="rows of synthetic data when no data set is given")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="a JSON file {\"train\": [{\"x\": [..4], \"y\": ..}]} (as prepare.py prints)")
    p.add_argument("--needs", metavar="JOB", help="take the data set from the stdout of workflow job JOB (GRID_NEEDS)")
    p.add_argument("--save", metavar="PATH", help="write the trained model's state_dict there")
    args = p.parse_args()

    torch.manual_seed(args.seed)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = torch.device("cuda:0" if gpus > 0 else "cpu")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus > 0:
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(gpus))
        print(f"device {device}: {gpus} GPU(s) ({names}), CUDA_VISIBLE_DEVICES={visible}", file=sys.stderr)
    else:
        print(f"device cpu (no GPU given{'' if visible is None else f', CUDA_VISIBLE_DEVICES={visible!r}'})", file=sys.stderr)

    rows = load_data(args)
    x = torch.tensor([r["x"] for r in rows], dtype=torch.float32, device=device)
    y = torch.tensor([[r["y"]] for r in rows], dtype=torch.float32, device=device)
    model = torch.nn.Linear(FEATURES, 1).to(device)
    # several GPUs given: each step splits the batch over all of them
    net = torch.nn.DataParallel(model) if gpus > 1 else model
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    loss_fn = torch.nn.MSELoss()
    every = max(1, args.steps // 5)
    loss = None
    for step in range(1, args.steps + 1):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        if step % every == 0 or step == 1 or step == args.steps:
            print(f"step {step}/{args.steps} loss {loss.item():.6f}", file=sys.stderr)

    if args.save is not None:
        torch.save(model.state_dict(), args.save)
        print(f"saved {args.save}", file=sys.stderr)
    print(json.dumps({
        "device": str(device), "gpus": gpus, "steps": args.steps,
        "loss": loss.item() if loss is not None else None,
        "weights": model.weight.detach().cpu().squeeze(0).tolist(), "bias": model.bias.item(),
    }))


if __name__ == "__main__":
    main()
