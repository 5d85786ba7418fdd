#!/usr/bin/env python3
"""Sums doctest's per-suite counts from Meson's testlog.json and prints
'N passed, N failed'. The Python suites (python/tests/harness.py) print the
same summary as "[python] test cases: ...". A suite that crashed or printed
no summary counts as one failed (or passed) case, by its exit status."""
import json, re, sys

path = sys.argv[1]
passed = failed = 0
try:
    lines = open(path, encoding="utf-8").read().splitlines()
except OSError:
    print("0 passed, 1 failed")  # the build failed before any test ran
    sys.exit(1)
summary = re.compile(r"\[(?:doctest|python)\] test cases:\s*(\d+) \|\s*(\d+) passed \|\s*(\d+) failed")
for line in lines:
    if not line.strip():
        continue
    t = json.loads(line)
    m = None
    for m in summary.finditer(t.get("stdout", "") or ""):
        pass
    ok = t.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
    if m and ok:
        passed += int(m.group(2)); failed += int(m.group(3))
    elif m:
        passed += int(m.group(2)); failed += max(int(m.group(3)), 1)
    else:
        passed += ok; failed += (not ok)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
