#!/usr/bin/env python3
"""Sums the test cases of every suite in Meson's testlog.json and prints
'N passed, N failed'. A doctest suite ends with its summary

    [doctest] test cases: 12 | 12 passed | 0 failed

and a Python test file (pytest) with its own:

    ======== 5 passed, 1 skipped, 2 warnings in 3.21s ========
    ======== 1 failed, 4 passed in 61.02s (0:01:01) ========

(failed and error count as failed; passed, xfailed and xpassed as passed;
skipped and deselected cases are not counted, as a suite that skips itself
counted none before.) A suite that crashed or printed no summary counts as
one failed (or passed) case, by its exit status; a suite whose summary says
nothing failed but that failed all the same counts one failure more."""
import json
import re
import sys

DOCTEST = re.compile(r"\[doctest\] test cases:\s*(\d+) \|\s*(\d+) passed \|\s*(\d+) failed")
# pytest's last line: "[=== ]<counts> in <seconds>s[ (h:mm:ss)][ ===]", counts "N word, N word, ..."
PYTEST = re.compile(r"^=*\s*((?:\d+ [a-z]+(?:, )?)+) in [\d.]+s(?: \([\d:]+\))?\s*=*\s*$", re.M)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def counts(stdout: str):
    """(passed, failed) from the last summary in `stdout`, or None."""
    last = None
    for m in DOCTEST.finditer(stdout):
        last = (m.end(), int(m.group(2)), int(m.group(3)))
    for m in PYTEST.finditer(stdout):
        n = {word: int(k) for k, word in re.findall(r"(\d+) ([a-z]+)", m.group(1))}
        passed = n.get("passed", 0) + n.get("xfailed", 0) + n.get("xpassed", 0)
        failed = n.get("failed", 0) + n.get("error", 0) + n.get("errors", 0)
        if last is None or m.end() > last[0]:
            last = (m.end(), passed, failed)
    return None if last is None else last[1:]


def main(path: str) -> int:
    passed = failed = 0
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        print("0 passed, 1 failed")  # the build failed before any test ran
        return 1
    for line in lines:
        if not line.strip():
            continue
        t = json.loads(line)
        c = counts(ANSI.sub("", t.get("stdout", "") or ""))
        ok = t.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
        if c is not None:
            passed += c[0]
            failed += c[1] if ok else max(c[1], 1)
        else:
            passed += ok
            failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
