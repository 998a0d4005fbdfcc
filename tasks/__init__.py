"""seqio tasks and mixtures for the Synthesizer and learned-kernel papers.

Importing this package registers every task and mixture (see README.md);
`python -m tasks list` prints them. Modules, one concern each:
- generated: download-free tasks from a seed, including `mtf_synth_demo`,
  the demo's default.
- synthesizer_paper: WMT'14, LM1B, CNN/DailyMail, GLUE, SuperGLUE, C4, AG
  News, IMDb (prepared TFDS data). personachat: ConvAI2 files.
- lra, listops: Long Range Arena and the learned-kernel paper's tasks.
- debian (over debian_corpus): real text installed with Debian, built by
  scripts/build_corpus.py; the small-scale stand-ins for WMT, LM1B, AG News.
- registry: the one registration helper; it writes every task's token
  pipeline and registers text tasks in both vocabularies.
- vocabularies, sources, errors: vocabularies, data sources and user paths,
  one-line errors (mtf_synth.errors.UserError).
- sentencepiece_training: trains a SentencePiece model on a task's text.
Of mtf_synth only `errors` is imported here, never the runtime or the command
line.
"""
from tasks import errors
from tasks import vocabularies
from tasks import generated
from tasks import synthesizer_paper
from tasks import lra
from tasks import personachat
from tasks import debian

DEMO_TASK = generated.DEMO_TASK
