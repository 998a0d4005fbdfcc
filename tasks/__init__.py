"""seqio tasks and mixtures for the Synthesizer and learned-kernel papers.

Importing this package registers every task and mixture; `python -m tasks
list` prints them. Modules: `generated` (download-free tasks, including the
demo's default `mtf_synth_demo`), `vocabularies`, `errors`.
"""
from tasks import errors
from tasks import vocabularies
from tasks import generated
from tasks import synthesizer_paper
from tasks import lra
from tasks import personachat

DEMO_TASK = generated.DEMO_TASK
