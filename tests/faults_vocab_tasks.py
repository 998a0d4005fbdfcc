"""A task whose vocabulary has 320 ids (bytes, 3 specials, 61 extra ids),
for tests/test_faults_vocabulary.py (imported with --module_import)."""

import seqio

import tasks  # noqa: F401  (registers mtf_synth_demo)  pylint: disable=unused-import

VOCABULARY = seqio.ByteVocabulary(extra_ids=61)
assert VOCABULARY.vocab_size == 320
_DEMO = seqio.get_mixture_or_task("mtf_synth_demo")
seqio.TaskRegistry.add(
    "faults_vocab_320", source=_DEMO.source,
    preprocessors=_DEMO.preprocessors,
    output_features={"inputs": seqio.Feature(VOCABULARY),
                     "targets": seqio.Feature(VOCABULARY)})
