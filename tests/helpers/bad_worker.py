#!/usr/bin/env python3
"""A warm worker that misbehaves on request, for tests: payload {"mode": ...} picks how it answers."""
import json
import os
import sys
import time

for line in sys.stdin:
    req = json.loads(line)
    mode = (req.get("payload") or {}).get("mode", "ok")
    out = sys.stdout
    if mode == "notjson":
        out.write("this is not json\n")
    elif mode == "wrongid":
        out.write(json.dumps({"id": "nope", "result": 1}) + "\n")
    elif mode == "huge":
        chunk = "x" * (1 << 20)
        for _ in range(100):
            out.write(chunk)
        out.write("\n")
    elif mode == "hang":
        time.sleep(3600)
    elif mode == "crash":
        os._exit(7)
    else:
        out.write(json.dumps({"id": req["id"], "result": {"pid": os.getpid(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES", "")}}) + "\n")
    out.flush()
