#!/usr/bin/env python3
"""A Grid warm worker in a few lines: one JSON request per line on stdin, one JSON reply per line on stdout.

Request: {"id": "...", "payload": <JSON>, "session": "..." or null, "type": "..."}
Reply:   {"id": "<same>", "result": <JSON>}   or   {"id": "<same>", "error": "message"}

Set ECHO_STARTUP_SECONDS to simulate a slow start (importing torch, loading a model). Anything on stderr goes to the
node's log. The worker ends when stdin closes.
"""
import json
import os
import sys
import time

time.sleep(float(os.environ.get("ECHO_STARTUP_SECONDS", "0")))  # a real worker loads its model here, once
pid = os.getpid()
served = 0
for line in sys.stdin:
    req = json.loads(line)
    served += 1
    payload = req.get("payload")
    if isinstance(payload, dict) and payload.get("fail"):
        reply = {"id": req["id"], "error": str(payload["fail"])}
    elif isinstance(payload, dict) and payload.get("crash"):
        os._exit(3)
    else:
        reply = {"id": req["id"], "result": {"echo": payload, "pid": pid, "served": served,
                                              "session": req.get("session"),
                                              "gpus": os.environ.get("CUDA_VISIBLE_DEVICES", "")}}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
