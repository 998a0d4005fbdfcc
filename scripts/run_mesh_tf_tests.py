#!/usr/bin/env python
"""Runs the unit tests shipped inside the mesh-tensorflow wheel through compat.

Each test file runs in its own process (they call disable_v2_behavior() at
import) with `import mtf_synth` first. Prints one line per file and the
totals; exits non-zero if any test failed.
Usage: python scripts/run_mesh_tf_tests.py [FILTER]  (scripts/mesh_tf_tests.sh sets up first)
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import mtf_synth  # noqa: F401  pylint: disable=unused-import
import mesh_tensorflow  # pylint: disable=g-bad-import-order

_RUNNER = """
import sys
import mtf_synth
import absl.flags
import pytest
absl.flags.FLAGS.mark_as_parsed()
sys.exit(pytest.main([sys.argv[1], "-q", "-p", "no:cacheprovider",
                      "--import-mode=importlib", "-o", "addopts=",
                      "--rootdir", sys.argv[2]]))
"""
_COUNTS = re.compile(r"(\d+) (passed|failed|error|errors|skipped)")


def test_files(name_filter):
  root = os.path.dirname(mesh_tensorflow.__file__)
  for folder, _, files in sorted(os.walk(root)):
    for name in sorted(files):
      path = os.path.join(folder, name)
      if name.endswith("_test.py") and name_filter in path:
        yield path


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("filter", nargs="?", default="")
  args = parser.parse_args()
  totals = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
  root = os.path.dirname(mesh_tensorflow.__file__)
  # Not the test's folder: transformer/gin/ there would shadow gin-config.
  workdir = tempfile.mkdtemp()
  for path in test_files(args.filter):
    start = time.time()
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER, path, root], capture_output=True,
        text=True, cwd=workdir, check=False)
    summary = (result.stdout.strip().splitlines() or [""])[-1]
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    for number, kind in _COUNTS.findall(summary):
      counts["errors" if kind.startswith("error") else kind] += int(number)
    for kind, number in counts.items():
      totals[kind] += number
    print("%-60s %3d passed %2d failed %2d errors %2d skipped  %5.1fs" % (
        os.path.relpath(path, root), counts["passed"], counts["failed"],
        counts["errors"], counts["skipped"], time.time() - start), flush=True)
  print("TOTAL: %(passed)d passed, %(failed)d failed, %(errors)d errors, "
        "%(skipped)d skipped" % totals)
  return 1 if totals["failed"] or totals["errors"] else 0


if __name__ == "__main__":
  sys.exit(main())
