"""Packaging invariants: gin files ship in the wheel; aliases match the pins."""

import glob
import os
import re

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)


def _read(path):
  with open(os.path.join(ROOT, path)) as f:
    return f.read()


def test_every_gin_file_matches_the_package_data_patterns():
  patterns = re.search(r'package_data=\{"mtf_synth.gin": \[([^\]]*)\]',
                       _read("setup.py")).group(1)
  depths = {p.count("/") for p in re.findall(r'"([^"]+)"', patterns)}
  gin_dir = os.path.join(ROOT, "gin")
  files = glob.glob(os.path.join(gin_dir, "**", "*.gin"), recursive=True)
  assert files
  for path in files:
    assert os.path.relpath(path, gin_dir).count("/") in depths, path


def test_nightly_aliases_require_the_pinned_releases():
  setup = _read("setup.py")
  for alias, release in (("tfds-nightly", "tensorflow-datasets"),
                         ("seqio-nightly", "seqio")):
    pin = re.search(r'"(%s==[^"]+)"' % release, setup).group(1)
    alias_setup = _read(os.path.join("packaging", alias + "-alias",
                                     "setup.py"))
    assert 'install_requires=["%s"]' % pin in alias_setup
