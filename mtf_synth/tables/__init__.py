"""The papers' tables reproduced with the `mtf_synth` command line.

scripts/tables.py is the command; this package is its library: specs (the
tables as data), planning (each cell's commands and fingerprint), metrics
(a finished cell's numbers from its event files), cells (running a cell)
and report (Markdown, CSV, plot).
"""

import os

# The source tree the `mtf_synth` commands run in (scripts, gin, tasks).
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir,
                                    os.pardir))
