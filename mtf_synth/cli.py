"""`mtf_synth`: the t5_mesh_transformer command line on TensorFlow 2.21.

Takes t5_mesh_transformer's flags unchanged (they are t5's own flag
definitions) and runs t5's main on mtf_synth's runtime. Before that it adds
mtf_synth's gin directory and t5's shipped gin files to the search path,
parses mtf_synth's defaults ahead of the user's gin files, and checks the
inputs a user can get wrong, turning each into a one-line error.
"""


import contextlib
import ctypes
import difflib
import functools
import logging
import os
import signal
import sys
import tempfile
import tokenize
import traceback
import uuid

import mtf_synth  # noqa: F401  (compat patches first)  pylint: disable=unused-import

from absl import app  # pylint: disable=g-bad-import-order
from absl import flags
import gin
from google.protobuf import message as protobuf_message
import mesh_tensorflow as mtf
import seqio
import tensorflow.compat.v1 as tf

from mesh_tensorflow.transformer import utils as mtf_utils
from t5.models import mesh_transformer
from t5.models import mesh_transformer_main
from mtf_synth import compat
from mtf_synth import errors
from mtf_synth import padded_vocabulary
from mtf_synth.runtime import checkpoints
from mtf_synth.runtime import cluster as cluster_lib
from mtf_synth.runtime import devices
from mtf_synth.runtime import model_dir_lock
from mtf_synth.runtime import train_loop

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "cluster_tasks", None, "host:port of every task of a run over several "
    "processes or hosts, the chief first; the same on every task (without "
    "it: TF_CONFIG, else SLURM's srun, else one process)")
flags.DEFINE_integer("task_index", None, "this task's position in "
                     "--cluster_tasks (0: the chief)")
flags.DEFINE_integer("cluster_start_timeout_secs", 300, "how long a cluster's "
                     "tasks wait for each other to come up")
flags.DEFINE_integer("cluster_lost_timeout_secs", 60, "a cluster task "
                     "unreachable this long stops every task")
_REPO_GIN_DIR = os.path.join(os.path.dirname(__file__), os.pardir, "gin")
_PACKAGE_GIN_DIR = os.path.join(os.path.dirname(__file__), "gin")
_T5_GIN_DIR = os.path.join(os.path.dirname(mesh_transformer.__file__), "gin")
# Always imported: the project's task registry.
_TASK_MODULES = ("tasks",)
# utils.run modes that restore a checkpoint instead of training.
_READING_MODES = ("eval", "score_eval", "perplexity_eval", "infer",
                  "score_from_dataset", "score_from_strings", "export",
                  "export_infer", "export_score")
# utils.run's modes.
_RUN_MODES = ("train",) + _READING_MODES
# The global step is an int64.
_INT64_MAX = 2**63 - 1
_MAIN_FLAGS = ("model_dir", "gin_file", "gin_param", "gin_location_prefix",
               "module_import", "tpu", "use_model_api", "mode",
               "mixture_or_task", "checkpoint_mode", "checkpoint_steps",
               "input_file", "output_file", "export_dir", "cluster_tasks",
               "task_index")
USAGE = """\
usage: mtf_synth --model_dir=DIR --gin_file=FILE [--gin_param=BINDING ...]

  train the demo:   mtf_synth --model_dir=runs/demo --gin_file=demo.gin
  evaluate it:      ... --gin_file=eval.gin --gin_param=eval_checkpoint_step=-1 \\
                        --gin_param="utils.run.dataset_split='validation'"
  decode a file:    ... --gin_file=infer.gin --gin_param=infer_checkpoint_step=-1 \\
                        --gin_param="input_filename='in.txt'" \\
                        --gin_param="output_filename='out.txt'"
  list the tasks:   python -m tasks list

--help lists the main flags, --helpfull all of them; README.md the workflow.
"""

# Upstream errors that are the user's once gin is parsed (in preflight's
# checks or t5's main), told apart from bugs by where they are raised:
# (path fragment, function or None, text to append).
_UPSTREAM_USER_ERRORS = (
    # gin's checks when a configurable is called: a missing required binding.
    (os.sep + "gin" + os.sep, None, ""),
    # mesh TF: a tensor dimension the mesh does not divide.
    (os.path.join("mesh_tensorflow", "ops.py"), "slice_shape",
     ": change utils.run.mesh_shape or utils.run.layout_rules, or make that "
     "dimension (num_heads, d_ff, vocabulary, ...) a multiple of the mesh"),
    # TF: a variable of utils.run.init_checkpoint of another shape.
    (os.path.join("training", "checkpoint_utils.py"), "_init_from_checkpoint",
     ": utils.run.init_checkpoint must hold the model's variables with the "
     "model's shapes; compare your gin files with the operative_config.gin "
     "beside that checkpoint"),
)


def _gin_search_dirs():
  """mtf_synth's gin files (source tree or installed), then t5's."""
  ours = _REPO_GIN_DIR if os.path.isdir(_REPO_GIN_DIR) else _PACKAGE_GIN_DIR
  return [os.path.abspath(ours), _T5_GIN_DIR]


def gin_search_path_and_files(gin_files, tpu=False):
  """(search path, gin files) of a command, as the command line uses them.

  The search path: mtf_synth's gin files (source tree or installed), then
  t5's shipped ones. The files: mtf_synth's defaults (runtime/defaults.gin,
  and runtime/local.gin off TPU) ahead of the command's gin_files.
  """
  defaults = ["runtime/defaults.gin"] + ([] if tpu else ["runtime/local.gin"])
  return _gin_search_dirs(), defaults + list(gin_files or [])


def _bound(name):
  """The value bound to a gin parameter (macros resolved), or None."""
  try:
    value = gin.query_parameter(name)
    # A macro (`%NAME`) is a reference to gin's `macro` configurable.
    while (isinstance(value, gin.config.ConfigurableReference)
           and value.configurable.name == "macro"):
      value = gin.query_parameter("%" + value.scopes[-1])
    return value
  except ValueError:
    return None


def _is_int(value):
  return isinstance(value, int) and not isinstance(value, bool)


def _check_positive_int(name, value, example):
  if not _is_int(value) or value <= 0:
    raise errors.UserError("%s=%r is not a positive integer: pass e.g. "
                           "--gin_param=%s=%s" % (name, value, name, example))
  if value > _INT64_MAX:
    raise errors.UserError("%s=%d is beyond the int64 range of TF's counters"
                           " (at most %d): pass e.g. --gin_param=%s=%s" % (
                               name, value, _INT64_MAX, name, example))


def _check_mixture_or_task(name):
  if not isinstance(name, str):
    return
  known = sorted(set(seqio.TaskRegistry.names()) |
                 set(seqio.MixtureRegistry.names()))
  if name not in known:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = ("did you mean %s?" % ", ".join(close)) if close else (
        "list them with `python -m tasks list`")
    raise errors.UserError("unknown task or mixture %r: %s (or add its module"
                           " with --module_import)" % (name, hint))


def _check_vocabulary():
  """A task is named, its SentencePiece files (if any) load, and its
  vocabulary has the model's real size (padded_vocabulary)."""
  if _bound("mesh_transformer.get_vocabulary.mixture_or_task_name") is None:
    raise errors.UserError(
        "no task given (t5 would fall back to its vocabulary on gs://): add "
        "--gin_file=dataset.gin --gin_param=\"MIXTURE_NAME='TASK'\" (list "
        "them with `python -m tasks list`), or --gin_file=demo.gin")
  vocabularies = mesh_transformer.get_vocabulary()
  if not isinstance(vocabularies, tuple):
    vocabularies = (vocabularies,)
  for vocabulary in vocabularies:
    if not isinstance(vocabulary, seqio.SentencePieceVocabulary):
      continue
    path = vocabulary.sentencepiece_model_file
    try:
      vocabulary.tokenizer  # pylint: disable=pointless-statement
    except (RuntimeError, OSError, tf.errors.OpError,
            protobuf_message.DecodeError) as e:
      raise errors.UserError(
          "SentencePiece model %s cannot be loaded (%s): give a valid .model "
          "file (train one with python scripts/train_sentencepiece.py), or "
          "use the task's _bytes variant" %
          (path, " ".join(str(e).split()))) from e
  for vocabulary in vocabularies:
    padded_vocabulary.check_task_vocabulary(vocabulary.vocab_size)


def _check_run_knobs():
  """Types and ranges of the common utils.run values, mesh vs batch."""
  train_steps = _bound("utils.run.train_steps")
  if not callable(train_steps) and not isinstance(
      train_steps, gin.config.ConfigurableReference) and train_steps is not None:
    _check_positive_int("utils.run.train_steps", train_steps, 1000)
  save_steps = _bound("utils.run.save_checkpoints_steps")
  if save_steps is not None:
    _check_positive_int("utils.run.save_checkpoints_steps", save_steps, 1000)
  sequence_length = _bound("utils.run.sequence_length")
  lengths = (sequence_length.values() if isinstance(sequence_length, dict)
             else [sequence_length] if sequence_length is not None else [])
  for length in lengths:
    _check_positive_int("utils.run.sequence_length", length,
                        "\"{'inputs': 512, 'targets': 512}\"")
  batch_size = _bound("utils.run.batch_size")
  if batch_size is None or isinstance(batch_size, tuple):
    return  # mesh TF's ("tokens_per_replica", N) form
  _check_positive_int("utils.run.batch_size", batch_size, 32)
  mesh_shape = _bound("utils.run.mesh_shape")
  layout_rules = _bound("utils.run.layout_rules")
  try:
    shape = mtf.convert_to_shape(mesh_shape)
    rules = mtf.convert_to_layout_rules(layout_rules)
  except ValueError as e:
    raise errors.UserError(
        "utils.run.mesh_shape=%r or utils.run.layout_rules=%r does not parse "
        "(%s): write them like 'model:2,batch:2' and 'batch:batch,d_ff:model'"
        % (mesh_shape, layout_rules, e)) from e
  axis = rules.tensor_dimension_to_mesh_axis(
      mtf.Dimension("batch", batch_size), shape)
  if axis is not None and batch_size % shape.dims[axis].size:
    size = shape.dims[axis].size
    raise errors.UserError(
        "utils.run.batch_size=%d does not split over mesh dimension %r of size"
        " %d (utils.run.mesh_shape=%r; utils.run.layout_rules puts batch on "
        "it): pass a batch_size that is a multiple of %d, or change mesh_shape"
        " or layout_rules" % (batch_size, shape.dims[axis].name, size,
                              str(mesh_shape), size))


def _check_sequence_length():
  sequence_length = _bound("utils.run.sequence_length")
  max_length = _bound("transformer.Unitransformer.max_length")
  if isinstance(sequence_length, int):
    sequence_length = {"inputs": sequence_length, "targets": sequence_length}
  if not isinstance(sequence_length, dict) or not isinstance(max_length, int):
    return
  for feature, length in sequence_length.items():
    if length > max_length:
      raise errors.UserError(
          "sequence_length[%r] = %d is longer than the model's max_length %d:"
          " lower utils.run.sequence_length or raise "
          "Unitransformer.max_length" % (feature, length, max_length))


def _check_input_file(path):
  """An infer input file has lines, every one text (names the first that is
  not); one note line counts those cut to the inputs' sequence length."""
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      for number, line in enumerate(f, start=1):
        try:
          line.decode("utf-8")
        except UnicodeDecodeError as e:
          raise errors.UserError(
              "input file %s, line %d, is not UTF-8 text (%s): give one text "
              "input per line" % (path, number, e.reason)) from e
  except tf.errors.NotFoundError as e:
    raise errors.UserError("input file %s not found: set input_filename "
                           "(decode_from_file.input_filename)" % path) from e
  inputs = mtf_utils.get_inputs_from_file(path)  # as decode_from_file reads it
  if not inputs:
    raise errors.UserError("input file %s has no input lines: give one text "
                           "input per line" % path)
  _note_truncated_inputs(path, inputs)


def _note_truncated_inputs(path, inputs):
  """decode_from_file cuts each input to sequence_length['inputs'] tokens
  (its EOS included) without a word: one note line with the count."""
  length = _bound("utils.run.sequence_length")
  length = length.get("inputs") if isinstance(length, dict) else length
  if not _is_int(length):
    return
  vocabulary = mtf_utils.inputs_vocabulary(mesh_transformer.get_vocabulary())
  eos = 0 if _bound("utils.run.model_type") == "lm" else 1
  cut = sum(len(vocabulary.encode(line.strip())) + eos > length
            for line in inputs)
  if cut:
    print("mtf_synth: note: %d of the %d lines of input file %s are longer "
          "than sequence_length['inputs'] = %d tokens and are cut to it: "
          "raise utils.run.sequence_length (and Unitransformer.max_length) "
          "to decode them whole" % (cut, len(inputs), path, length),
          file=sys.stderr)


def _mode():
  """The mode of this run (utils.run's, or --mode with --use_model_api)."""
  if FLAGS.use_model_api:
    if not FLAGS.mode:
      raise errors.UserError("--use_model_api needs --mode (train, eval, "
                             "predict, ...)")
    return FLAGS.mode
  if FLAGS.mode:
    raise errors.UserError("--mode is for --use_model_api; without it set "
                           "--gin_param=\"utils.run.mode='%s'\"" % FLAGS.mode)
  mode = _bound("utils.run.mode") or "train"
  if mode not in _RUN_MODES:
    close = difflib.get_close_matches(str(mode), _RUN_MODES, n=3)
    raise errors.UserError(
        "utils.run.mode=%r is not a mode: %suse one of %s" % (
            mode, "did you mean %s? " % ", ".join(close) if close else "",
            ", ".join(_RUN_MODES)))
  return mode


def _trains(mode):
  return mode in ("train", "finetune")


def _requested_steps(mode):
  """(checkpoint steps asked for, the knob naming them) of a reading run."""
  if FLAGS.use_model_api:
    if FLAGS.checkpoint_mode == "specific":
      return [int(s) for s in FLAGS.checkpoint_steps], "--checkpoint_steps"
    return (-1 if FLAGS.checkpoint_mode == "latest" else "all"), (
        "--checkpoint_mode")
  if mode.startswith("export"):
    return (_bound("utils.run.export_checkpoint_step") or -1,
            "utils.run.export_checkpoint_step")
  return (_bound("utils.run.eval_checkpoint_step"),
          "eval_checkpoint_step (infer_checkpoint_step in infer.gin)")


def _check_checkpoints_exist(model_dir, requested_steps):
  """The checkpoints a reading run asks for exist (exactly those steps) and
  can be restored (-1: one of them)."""
  steps, knob = requested_steps
  if steps is None:
    return  # upstream: wait for each new checkpoint as training writes it
  existing = checkpoints.steps(model_dir)
  if not existing:
    raise errors.UserError(
        "no checkpoint in model_dir %s: train there first, or pass the "
        "--model_dir you trained in" % model_dir)
  if steps == -1:
    checkpoints.newest_intact(model_dir)  # raises when none is intact
    return
  if _is_int(steps):
    steps = [steps]
  if isinstance(steps, (list, tuple)):
    missing = [s for s in steps if s not in existing]
    if missing:
      raise errors.UserError(
          "checkpoint step %s is not in model_dir %s, which has steps %s: "
          "ask for one of those with %s (-1: the latest)" % (
              ", ".join(map(str, missing)), model_dir,
              ", ".join(map(str, existing)), knob))
  for step in existing if steps == "all" else steps:
    checkpoints.check_intact(model_dir, step, knob)


def _check_model_dir(model_dir, create):
  """model_dir is writable; created only by a run that trains."""
  if not create and not tf.io.gfile.isdir(model_dir):
    raise errors.UserError(
        "model_dir %s does not exist: train there first, or pass the "
        "--model_dir you trained in" % model_dir)
  probe = os.path.join(model_dir, ".write_probe_%s" % uuid.uuid4().hex)
  try:
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(probe, "w") as f:
      f.write("")
    tf.io.gfile.remove(probe)
  except (tf.errors.OpError, OSError) as e:
    raise errors.UserError(
        "model_dir %s is not writable (%s): pass a --model_dir you can write "
        "to" % (model_dir, " ".join(str(e).split()))) from e


@contextlib.contextmanager
def gin_parse_errors(error_type=errors.UserError):
  """gin's errors while parsing a config (syntax, unknown configurable or
  parameter, missing file) are the user's: each becomes an `error_type`
  naming the fix. Only around parsing: where configurables are called, a
  ValueError may be a bug."""
  try:
    yield
  except (SyntaxError, tokenize.TokenError) as e:
    raise error_type("gin cannot parse the config (%s): fix that line"
                     % _one_line(e)) from e
  except OSError as e:
    raise error_type("%s (gin files are searched in: %s)" % (
        _one_line(e), ", ".join(_gin_search_dirs()))) from e
  except ValueError as e:
    raise error_type(
        "%s (check the spelling, or import the module defining it with "
        "--module_import or an `import` line in the gin file)" %
        _one_line(e)) from e


def _parse_gin():
  """Parses mesh TF's defaults, then the command's gin files and bindings
  (the one place the command line parses gin)."""
  with gin_parse_errors():
    mtf_utils.parse_gin_defaults_and_flags(
        skip_unknown=(FLAGS.skip_all_gin_unknowns or (
            mesh_transformer.DEPRECATED_GIN_REFERENCES +
            tuple(FLAGS.additional_deprecated_gin_references))),
        finalize_config=False)


def preflight(cluster=None):
  """Parses the gin config once to check it, then clears it for t5's main.

  (t5's main parses it again: it parses unconditionally, and this check
  must run before anything is written; see runtime/__init__.py.)

  Returns:
    this run's mode, its train_steps when that is an integer (or None), the
    checkpoint steps it reads with the knob that names them, the CPU
    devices each task of the cluster needs (1 without a cluster), and the
    slice/activation dtypes of a run off TPU ({argument: value}; empty on
    TPU).
  """
  for module in FLAGS.module_import or []:
    __import__(module)
  _parse_gin()
  with _upstream_user_errors():
    return _check_config(cluster)


def _check_config(cluster):
  """preflight's checks of the parsed config; clears it."""
  _check_mixture_or_task(_bound("mesh_transformer.get_vocabulary."
                                "mixture_or_task_name"))
  if FLAGS.use_model_api:
    _check_mixture_or_task(FLAGS.mixture_or_task)
  else:
    _check_vocabulary()
  _check_run_knobs()
  _check_sequence_length()
  cpus_per_task = 1
  if not FLAGS.tpu:
    mesh_shape = _bound("utils.run.mesh_shape")
    mesh_devices = _bound("utils.run.mesh_devices")
    if not isinstance(mesh_devices, list):
      mesh_devices = None
    if isinstance(mesh_shape, str) and mesh_devices:
      devices.check_mesh_devices(mesh_shape, mesh_devices,
                                 local=cluster is None)
    if isinstance(mesh_shape, str) and cluster is not None:
      cpus_per_task = devices.cpus_per_task(mesh_shape, mesh_devices,
                                            cluster.num_tasks)
    elif isinstance(mesh_shape, str) and not mesh_devices:
      devices.local_mesh_devices(mesh_shape)  # raises if they don't fit
  mode = _mode()
  if mode == "infer" and (cluster is None or cluster.is_chief):
    _check_input_file(_bound("decode_from_file.input_filename"))
  # finetune's --train_steps count on from the pretrained checkpoint: its
  # total is known only to MtfModel.finetune (train_loop checks it there).
  train_steps = (None if mode == "finetune" else
                 FLAGS.train_steps if FLAGS.use_model_api
                 else _bound("utils.run.train_steps"))
  if FLAGS.use_model_api and _is_int(train_steps):  # gin's: _check_run_knobs
    _check_positive_int("--train_steps", train_steps, 1000)
  requested_steps = None if _trains(mode) else _requested_steps(mode)
  variable_dtypes = {} if FLAGS.tpu else compat.off_tpu_variable_dtype()
  _note_dtypes_off_tpu(variable_dtypes)
  gin.clear_config()
  return (mode, train_steps if _is_int(train_steps) else None,
          requested_steps, cpus_per_task, variable_dtypes)


def _note_dtypes_off_tpu(variable_dtypes):
  """One line per utils.get_variable_dtype binding that off TPU does not
  run as configured (t5 binds float32 there; the knob says what runs)."""
  for name, runs_as in sorted(variable_dtypes.items()):
    configured = _bound("utils.get_variable_dtype." + name)
    if configured is not None and (tf.as_dtype(configured) !=
                                   tf.as_dtype(runs_as)):
      print("mtf_synth: note: off TPU %s is %s, not the config's %s of "
            "utils.get_variable_dtype; set mtf_synth.off_tpu_variable_dtype."
            "%s to change it" % (name, tf.as_dtype(runs_as).name,
                                 tf.as_dtype(configured).name, name),
            file=sys.stderr)


def _configure_gin():
  """Task modules imported; FLAGS' gin files and search path as t5's main
  is to parse them (mtf_synth's first)."""
  for module in _TASK_MODULES:
    __import__(module)
  search_path, FLAGS.gin_file = gin_search_path_and_files(FLAGS.gin_file,
                                                          FLAGS.tpu)
  for path in search_path + list(FLAGS.gin_location_prefix or []):
    gin.add_config_file_search_path(path)
  if FLAGS.use_model_api:
    # t5's main trains on --mixture_or_task but takes the vocabulary of
    # predict, score and export from the MIXTURE_NAME macro.
    FLAGS.gin_param = list(FLAGS.gin_param or []) + [
        "MIXTURE_NAME = %r" % FLAGS.mixture_or_task]


def check_command(args):
  """Checks a `mtf_synth` command's arguments (the flags after the program
  name) as the command line does before it runs, for a single process; runs
  nothing, writes nothing. Raises the command's user error, if any."""
  was_parsed = FLAGS.is_parsed()
  FLAGS.unparse_flags()
  FLAGS(["mtf_synth"] + [a for a in args if not a.startswith("--model_dir")]
        + ["--model_dir=/unused"])
  gin.clear_config()
  logging.disable(logging.ERROR)  # gin logs every search-path miss
  try:
    _configure_gin()
    preflight()
  finally:
    logging.disable(logging.NOTSET)
    gin.clear_config()
    FLAGS.unparse_flags()
    if was_parsed:
      FLAGS.mark_as_parsed()


def main(argv):
  if not FLAGS["model_dir"].present:
    raise errors.UserError("no --model_dir given: pass --model_dir=DIR, the "
                           "folder for checkpoints and logs")
  _configure_gin()
  cluster = None if FLAGS.tpu else cluster_lib.resolve(
      FLAGS.cluster_tasks, FLAGS.task_index,
      start_timeout_secs=FLAGS.cluster_start_timeout_secs,
      lost_timeout_secs=FLAGS.cluster_lost_timeout_secs)
  if cluster is not None and FLAGS.use_model_api:
    raise errors.UserError(
        "--use_model_api cannot run on a cluster (t5's MtfModel gives the "
        "mesh no devices, so it would all run on the chief): drop "
        "--use_model_api and set utils.run.mode, or run one process")
  (mode, train_steps, requested_steps, cpus_per_task,
   variable_dtypes) = preflight(cluster)
  run = functools.partial(_run, argv, mode, train_steps, requested_steps,
                          variable_dtypes)
  if cluster is None:
    run()
    return
  cluster_lib.start_server(cluster, cpus_per_task)
  cluster_lib.end_on_signals_while_blocked()
  if not cluster.is_chief:
    cluster_lib.serve(cluster)  # exits with the chief's exit code
  model_dir = FLAGS.model_dir
  cluster_lib.watch(cluster, cluster.tasks[1:], lambda task: (
      "the latest checkpoint is %s; restart every task with the same "
      "commands to resume" % tf.train.latest_checkpoint(model_dir)), 2)
  try:
    run()
  except BaseException:
    cluster_lib.notify_done(cluster, 1)
    raise
  cluster_lib.notify_done(cluster, 0)


def _run(argv, mode, train_steps, requested_steps, variable_dtypes):
  """The run of a single process, or of a cluster's chief."""
  model_dir = FLAGS.model_dir
  _check_model_dir(model_dir, create=_trains(mode))
  if _trains(mode):
    model_dir_lock.acquire(model_dir)
    if train_loop.already_trained(model_dir, train_steps):
      print("mtf_synth: %s is at step %d = train_steps already: nothing to "
            "train (raise train_steps to train further)" %
            (model_dir, train_steps), file=sys.stderr)
      return
  elif mode in _READING_MODES or FLAGS.use_model_api:
    _check_checkpoints_exist(model_dir, requested_steps)
  with _upstream_user_errors(), compat.variable_dtypes(variable_dtypes):
    # Runs on mtf_synth.runtime's Estimator (see runtime/__init__.py).
    mesh_transformer_main.main(argv)


def _one_line(error):
  """str(error) on one line, without gin's "In call to configurable" trail."""
  lines = [line.strip() for line in str(error).splitlines()
           if not line.strip().startswith("In call to configurable")]
  return " ".join(line for line in lines if line) or type(error).__name__


@contextlib.contextmanager
def _upstream_user_errors():
  """Upstream errors that are the user's (_UPSTREAM_USER_ERRORS) become
  UserErrors; any other error is a bug and passes unchanged."""
  try:
    yield
  except (ValueError, SyntaxError, OSError) as e:
    frames = traceback.extract_tb(e.__traceback__)
    for fragment, function, fix in _UPSTREAM_USER_ERRORS:
      if frames and fragment in frames[-1].filename and function in (
          None, frames[-1].name):
        raise errors.UserError(_one_line(e) + fix) from e
    raise


def _exit_with_one_line(message, code):
  print("mtf_synth: error: %s" % message, file=sys.stderr)
  if code == 2:
    print("mtf_synth: (set MTF_SYNTH_TRACEBACK=1 to see the traceback)",
          file=sys.stderr)
  sys.exit(code)


def _raise_interrupted(signum, unused_frame):
  raise errors.Interrupted(signum, "stopped by %s; nothing was saved since "
                           "the latest checkpoint" % signal.Signals(signum).name)


def _parse_flags(argv):
  """absl's flag parsing; a bad flag is a one-line error (absl: FATAL, 1)."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    _exit_with_one_line("%s: fix the flag (--helpfull lists them all)" %
                        _one_line(e), 2)


def _run_with_one_line_errors(argv):
  signal.signal(signal.SIGTERM, _raise_interrupted)
  try:
    main(argv)
  except KeyboardInterrupt:
    _exit_with_one_line("stopped by SIGINT; nothing was saved since the "
                        "latest checkpoint", 128 + signal.SIGINT)
  except errors.Interrupted as e:
    _exit_with_one_line(_one_line(e), e.exit_code)
  except errors.UserError as e:
    if os.environ.get("MTF_SYNTH_TRACEBACK"):
      raise
    _exit_with_one_line(_one_line(e), 2)


class _DropMissingGinPathNoise(logging.Filter):
  """gin logs an ERROR for every search-path directory a file is not in."""

  def filter(self, record):
    return not (record.module == "resource_reader"
                and record.msg.startswith("Path not found"))


def drop_missing_gin_path_noise():
  """Keeps gin's search-path misses out of the log (every command line)."""
  logging.getLogger().addFilter(_DropMissingGinPathNoise())


def _has_cuda_driver():
  """Whether this machine has the CUDA driver library (GPUs may work)."""
  try:
    ctypes.CDLL("libcuda.so.1")
  except OSError:
    return False
  return True


@contextlib.contextmanager
def _native_stderr_without(text):
  """Drops the lines holding `text` from what is written to file descriptor
  2 meanwhile (TF's C++ logging writes there, past Python's sys.stderr);
  the other lines are written after, in order."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      for line in captured:
        if text not in line:
          os.write(2, line)


def _start_gpu_platform_quietly():
  """Starts TF's GPU platform (it lists the GPUs) once, up front.

  On a machine without a CUDA driver that start prints an E-level "failed
  call to cuInit" line, which TF_CPP_MIN_LOG_LEVEL below 3 keeps; TF has
  already said at import that there is no driver and GPUs are not used, so
  the line is dropped. With a driver the line is a real failure and stays.
  """
  if _has_cuda_driver():
    return
  with _native_stderr_without(b"failed call to cuInit"):
    tf.config.list_physical_devices("GPU")


def console_main():
  if len(sys.argv) == 1:
    sys.stderr.write(USAGE)
    sys.exit(2)
  for name in _MAIN_FLAGS:  # what --help shows
    FLAGS.register_key_flag_for_module(sys.argv[0], FLAGS[name])
  drop_missing_gin_path_noise()
  tf.disable_v2_behavior()
  _start_gpu_platform_quietly()
  tf.logging.set_verbosity(tf.logging.INFO)
  app.run(_run_with_one_line_errors, flags_parser=_parse_flags)


if __name__ == "__main__":
  console_main()
