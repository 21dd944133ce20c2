#!/usr/bin/env python3
"""The map of a map-reduce word count: one run per item (a line of text, on stdin and in GRID_ITEM).

Prints one JSON object, {word: count}, for the words of its line (lower-cased, letters, digits and ' only).
Run by: gridctl distribute --strategy map-reduce --items examples/wordcount/input.txt ... -- python3 examples/wordcount/map.py
"""
import collections
import json
import os
import re
import sys

line = os.environ.get("GRID_ITEM")
if line is None:  # run by hand: the item on stdin
    line = sys.stdin.readline()
counts = collections.Counter(re.findall(r"[a-z0-9']+", line.lower()))
print(json.dumps(counts, sort_keys=True))
