"""Runs the `mtf_synth` command line in a subprocess for tests."""

import hashlib
import os
import subprocess
import sys

import numpy as np

import tensorflow.compat.v1 as tf

from mtf_synth.runtime.summaries import scalars  # noqa: F401  (the tests' reader)

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

# A tiny T5.1.1 encoder-decoder on the generated demo task, 2x2 CPU mesh.
T5_TINY_ON_DEMO = [
    "--gin_file=dataset.gin", "--gin_file=models/t5.1.1.tiny.gin",
    "--gin_param=MIXTURE_NAME='mtf_synth_demo'",
    "--gin_param=utils.run.batch_size=8",
    "--gin_param=utils.run.sequence_length={'inputs': 64, 'targets': 64}",
    "--gin_param=utils.run.mesh_shape='model:2,batch:2'",
    "--gin_param=mtf_synth.train_loop_settings.log_every_steps=5",
]


def command(model_dir, *args):
  """`python -m mtf_synth` with model_dir (None: no --model_dir) and args."""
  return ([sys.executable, "-m", "mtf_synth"] +
          (["--model_dir=%s" % model_dir] if model_dir is not None else []) +
          list(args))


def environment():
  """Test-only task modules importable; errors as one line, not tracebacks."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=TESTS_DIR + os.pathsep + os.environ.get(
                 "PYTHONPATH", ""))
  env.pop("MTF_SYNTH_TRACEBACK", None)
  return env


def mtf_synth(model_dir, *args, timeout=600, cwd=None, env=None):
  """Runs `python -m mtf_synth` (see `command`; `env`: variables to set
  beside `environment()`'s); returns the CompletedProcess, its output as
  text."""
  return subprocess.run(command(model_dir, *args), capture_output=True,
                        text=True, env=dict(environment(), **(env or {})),
                        timeout=timeout, cwd=cwd, check=False)


def train_tiny_t5(model_dir, *params):
  """Trains T5_TINY_ON_DEMO into model_dir with extra gin params; asserts
  it succeeded and returns model_dir (the shared module fixtures' body)."""
  result = mtf_synth(model_dir, *T5_TINY_ON_DEMO,
                     *("--gin_param=" + p for p in params))
  assert result.returncode == 0, result.stderr[-3000:]
  return model_dir


def start_mtf_synth(model_dir, *args, capture=False):
  """Starts `python -m mtf_synth` without waiting (for kill tests).

  With capture, communicate() returns its stderr as text.
  """
  return subprocess.Popen(command(model_dir, *args),
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE if capture else
                          subprocess.DEVNULL, text=True, env=environment())


def checkpoint_digest(model_dir):
  """Hash of the checkpoints' steps and variable values.

  Restarting on a model_dir re-writes its latest checkpoint with the same
  values (the saver runs at session start), so bytes of .meta files may
  change; what must not change is which checkpoints exist and their values.
  """
  digest = hashlib.sha256()
  state = tf.train.get_checkpoint_state(model_dir)
  paths = list(state.all_model_checkpoint_paths) if state else []
  digest.update(repr([os.path.basename(p) for p in paths]).encode())
  for path in paths:
    reader = tf.train.load_checkpoint(path)
    for name in sorted(reader.get_variable_to_shape_map()):
      digest.update(name.encode())
      digest.update(np.asarray(reader.get_tensor(name)).tobytes())
  return digest.hexdigest()
