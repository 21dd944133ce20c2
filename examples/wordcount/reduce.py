#!/usr/bin/env python3
"""The reduce of a map-reduce word count: gets every map run's result on stdin, one JSON line each
({"index", "item", "status", "exitCode", "stdout"}), adds up their counts, and prints "word count" lines, most
frequent first (ties by word). Its stdout is the job's answer. A map run that did not succeed fails the reduce, so the
job never reports a partial count as the answer.
"""
import collections
import json
import sys

total = collections.Counter()
for line in sys.stdin:
    if not line.strip():
        continue
    result = json.loads(line)
    if result["status"] != "completed":
        sys.exit(f"item {result['index']} ({result['item']!r}) did not complete: {result['status']}")
    total.update(json.loads(result["stdout"]))
for word, count in sorted(total.items(), key=lambda kv: (-kv[1], kv[0])):
    print(f"{word} {count}")
