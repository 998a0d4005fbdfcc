"""Tasks only the command-line tests use (imported with --module_import)."""

import numpy as np
import seqio
import tensorflow as tf

import tasks  # noqa: F401  (registers mtf_synth_demo)  pylint: disable=unused-import


def _empty_source(split, shuffle_files=False, seed=None):
  del split, shuffle_files, seed
  return tf.data.Dataset.from_tensor_slices(
      {"inputs": tf.constant([], tf.string),
       "targets": tf.constant([], tf.string)})


_VOCABULARY = seqio.ByteVocabulary()
seqio.TaskRegistry.add(
    "cli_test_empty",
    source=seqio.FunctionDataSource(_empty_source, splits=["train"]),
    preprocessors=[seqio.preprocessors.tokenize,
                   seqio.preprocessors.append_eos_after_trim],
    output_features={"inputs": seqio.Feature(_VOCABULARY),
                     "targets": seqio.Feature(_VOCABULARY)})


def mean_log_likelihood(targets, scores):
  """A score metric: utils.run's score_eval passes it the examples' scores."""
  del targets
  return {"mean_log_likelihood": float(np.mean(scores))}


_DEMO = seqio.get_mixture_or_task("mtf_synth_demo")
seqio.TaskRegistry.add(
    "cli_test_demo_scored", source=_DEMO.source,
    preprocessors=_DEMO.preprocessors, output_features=_DEMO.output_features,
    metric_fns=[mean_log_likelihood])
