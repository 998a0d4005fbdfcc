"""One mesh TF `utils.run` training run of a gin model on random tokens.

The same script for both runtimes: with mtf_synth installed (TF 2.21),
`import mtf_synth` comes first and the run goes through its Estimator; in the
TF 2.12 venv of bench/setup_peers.sh it is upstream mesh TF 0.1.21 with TF's
own Estimator. Random token ids (fixed seed, no packing) make a step's cost
depend on the model alone.

Reports (bench/harness.py) when each start-up stage ended, in seconds since
launch, with the process's RSS there: imports, gin parsed, graph built,
session created (variables initialised), first step, last step; the
median time of the steps after the first two; on mtf_synth, the logged
loss at each log interval. With BENCH_TRACE_RUNS="4,5" it also traces
those steps and reports their op profile (bench/step_stats.py).

  python bench/train_same.py [--gin_file=bench/peer_model.gin] [BINDING...] STEPS
"""

import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  pylint: disable=g-import-not-at-top

figures = {"runtime": "mtf_synth" if importlib.util.find_spec("mtf_synth")
           else "upstream"}


def stage(name):
  harness.mark_stage(figures, name)


stage("interpreter")
if figures["runtime"] == "mtf_synth":
  import mtf_synth  # noqa: F401,E402  pylint: disable=g-import-not-at-top,unused-import
import gin  # noqa: E402  pylint: disable=g-import-not-at-top
import tensorflow.compat.v1 as tf  # noqa: E402  pylint: disable=g-import-not-at-top
from mesh_tensorflow.transformer import utils  # noqa: E402  pylint: disable=g-import-not-at-top
import step_stats  # noqa: E402  bench/step_stats.py  pylint: disable=g-import-not-at-top

stage("imports")
VOCAB_SIZE = 2048
FIRST_TOKEN = 3  # 0 padding, 1 EOS, 2 UNK


@gin.configurable
class RandomTokensVocabulary:
  """Only the size matters to training; ids are their own tokens."""
  vocab_size = VOCAB_SIZE
  eos_id = 1
  unk_id = 2


@gin.configurable
def random_tokens(sequence_length, vocabulary, dataset_split, seed=1234,
                  counting_targets=False):
  """An endless dataset of uniformly random, unpadded examples.

  counting_targets: targets count up from a random start (each token the
  previous + 1), which the decoder learns in tens of steps, so a loss
  curve shows whether training works; the cost per step is unchanged.
  """
  del vocabulary, dataset_split

  def example(index):
    features = {name: tf.random.stateless_uniform(
        [length], seed=[seed, index * len(sequence_length) + column],
        minval=FIRST_TOKEN, maxval=VOCAB_SIZE, dtype=tf.int32)
                for column, (name, length) in enumerate(sorted(
                    sequence_length.items()))}
    if counting_targets:
      start = features["targets"][0] - FIRST_TOKEN
      features["targets"] = FIRST_TOKEN + tf.math.floormod(
          start + tf.range(sequence_length["targets"]),
          VOCAB_SIZE - FIRST_TOKEN)
    return features

  return tf.data.Dataset.range(1 << 40).map(example)


class StageHook(tf.train.SessionRunHook):
  """Times graph built / session created / each step, as the runtime sees."""

  def __init__(self):
    self.step_ends = []

  def begin(self):
    stage("graph_built")

  def after_create_session(self, session, coord):
    stage("session_created")

  def after_run(self, run_context, run_values):
    self.step_ends.append(time.perf_counter())
    if len(self.step_ends) == 1:
      stage("first_step")


def main(argv):
  *flags, steps = argv[1:]
  steps = int(steps)
  gin_files = [f.split("=", 1)[1] for f in flags
               if f.startswith("--gin_file=")] or [
                   os.path.join(harness.BENCH_DIR, "peer_model.gin")]
  bindings = [f for f in flags if not f.startswith("--gin_file=")]
  tf.disable_v2_behavior()
  tf.logging.set_verbosity(tf.logging.ERROR)
  model_dir = tempfile.mkdtemp(prefix="bench_train_same_")
  gin.parse_config_files_and_bindings(gin_files, [
      "run.model_dir = %r" % model_dir, "run.tpu_job_name = None",
      "run.tpu = None", "run.gcp_project = None", "run.tpu_zone = None",
      "run.mode = 'train'", "run.train_steps = %d" % steps,
      "run.train_dataset_fn = @random_tokens",
      "run.vocabulary = @RandomTokensVocabulary()",
      "run.save_checkpoints_steps = 1000000",
      "run.iterations_per_loop = 1"] + bindings)
  stage("gin_parsed")
  hook = StageHook()
  step_stats.add_hook("train", hook)
  trace = None
  if step_stats.trace_runs():
    trace = step_stats.TraceHook(step_stats.trace_runs())
    step_stats.add_hook("train", trace)
  utils.run()  # pylint: disable=no-value-for-parameter
  stage("last_step")
  if figures["runtime"] == "mtf_synth":  # the loss at each log interval
    from mtf_synth.runtime.summaries import scalars  # pylint: disable=g-import-not-at-top
    figures["losses"] = {str(step): loss for step, loss in
                         scalars(model_dir, "loss").items()}
  shutil.rmtree(model_dir, ignore_errors=True)
  if trace is not None:
    figures["op_profile"] = step_stats.summary(trace.step_stats)
  step_times = [b - a for a, b in zip(hook.step_ends, hook.step_ends[1:])]
  harness.report(steps=steps,
                 step_median_s=(statistics.median(step_times[1:])
                                if len(step_times) > 1 else None),
                 **figures)


if __name__ == "__main__":
  main(sys.argv)
