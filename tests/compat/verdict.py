#!/usr/bin/env python3
"""Counts a tempest run's results (subunit2csv's CSV) against the expected
failures. usage: verdict.py RESULTS.csv EXPECTED-FAILURES SUITE SECONDS

An expected-failures line is a test id, a class or a module (without tempest's
[id-...] tags), then "# reason"; it covers every test under it. A class whose
setUpClass failed counts as one failure of the class.
Exit status 1 if a failure is not expected, or an expected one now passes."""
import csv
import re
import sys


def normalize(test_id):
    test_id = re.sub(r"\[.*\]$", "", test_id.strip())
    m = re.match(r"^(setUpClass|tearDownClass) \((.*)\)$", test_id)
    return m.group(2) if m else test_id


def covers(entry, test_id):
    return test_id == entry or test_id.startswith(entry + ".")


results, expected = {}, {}
with open(sys.argv[1], newline="", errors="replace") as f:
    for row in csv.DictReader(f):
        test_id = normalize(row["test"])
        status = row["status"]
        # A class-level failure outweighs its tests' results.
        if results.get(test_id) not in ("fail", "failure"):
            results[test_id] = status
with open(sys.argv[2]) as f:
    for line in f:
        entry, _, reason = line.partition("#")
        if entry.strip():
            expected[entry.strip()] = reason.strip()
suite, seconds = sys.argv[3], sys.argv[4]

passed = [t for t, s in results.items() if s in ("success", "xfail")]
failed = [t for t, s in results.items() if s in ("fail", "failure", "uxsuccess")]
skipped = [t for t, s in results.items() if s == "skip"]
unexpected = [t for t in failed if not any(covers(e, t) for e in expected)]
# An entry that covers tests of this run, none of them failing: done.
stale = []
for e in expected:
    ran = [t for t in results if covers(e, t)]
    if ran and not any(t in failed for t in ran) and any(t in passed for t in ran):
        stale.append(e)

print(f"tempest {suite}: {len(passed)} passed, {len(failed)} failed "
      f"({len(failed) - len(unexpected)} expected), {len(skipped)} skipped in {seconds} s")
for t in sorted(unexpected):
    print(f"  unexpected failure: {t}")
for e in sorted(stale):
    print(f"  now passes, take it out of expected-failures.txt: {e}")
sys.exit(1 if unexpected or stale else 0)
