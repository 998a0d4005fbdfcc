"""Tasks only the command-line tests use (imported with --module_import)."""

import seqio
import tensorflow as tf


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
