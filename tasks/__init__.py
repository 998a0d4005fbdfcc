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
- vocabularies, registry, sources, errors: vocabularies, the two-vocabulary
  registration helper, data sources and user paths, one-line errors.
- sentencepiece_training: trains a SentencePiece model on a task's text.
Nothing here imports the mtf_synth runtime.
"""
from tasks import errors
from tasks import vocabularies
from tasks import generated
from tasks import synthesizer_paper
from tasks import lra
from tasks import personachat
from tasks import debian

DEMO_TASK = generated.DEMO_TASK
