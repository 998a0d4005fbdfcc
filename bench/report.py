"""Writes one benchmark's section of BENCHMARKS.md."""

import os

BENCHMARKS_MD = os.path.join(os.path.dirname(__file__), os.pardir,
                             "BENCHMARKS.md")


def write_section(heading, section, path=BENCHMARKS_MD):
  """Replaces the section starting at `heading` (or appends it)."""
  text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
  start = text.find(heading)
  if start < 0:
    text = text.rstrip("\n") + "\n\n" + section
  else:
    end = text.find("\n## ", start + len(heading))
    text = text[:start] + section + (text[end:] if end >= 0 else "")
  with open(path, "w") as f:
    f.write(text.rstrip("\n") + "\n")
