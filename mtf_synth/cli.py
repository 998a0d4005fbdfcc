"""`mtf_synth`: the t5_mesh_transformer command line on TensorFlow 2.21.

Takes t5_mesh_transformer's flags unchanged (they are t5's own flag
definitions) and runs t5's main on mtf_synth's runtime. Before that it adds
mtf_synth's gin directory and t5's shipped gin files to the search path,
parses mtf_synth's defaults ahead of the user's gin files, and checks the
inputs a user can get wrong, turning each into a one-line error.
"""

import difflib
import os
import sys
import uuid

import mtf_synth  # noqa: F401  (compat patches first)  pylint: disable=unused-import

from absl import app  # pylint: disable=g-bad-import-order
from absl import flags
import gin
import seqio
import tensorflow.compat.v1 as tf

from mesh_tensorflow.transformer import utils as mtf_utils
from t5.models import mesh_transformer
from t5.models import mesh_transformer_main
from mtf_synth.runtime import devices
from mtf_synth.runtime import train_loop  # noqa: F401  (registers its gin knobs)

FLAGS = flags.FLAGS
_REPO_GIN_DIR = os.path.join(os.path.dirname(__file__), os.pardir, "gin")
_PACKAGE_GIN_DIR = os.path.join(os.path.dirname(__file__), "gin")
_T5_GIN_DIR = os.path.join(os.path.dirname(mesh_transformer.__file__), "gin")
# Always imported: the project's task registry.
_TASK_MODULES = ("tasks",)


class UsageError(ValueError):
  """A user input the command line rejects before running anything."""


def gin_search_dirs():
  """mtf_synth's gin files (source tree or installed), then t5's."""
  ours = _REPO_GIN_DIR if os.path.isdir(_REPO_GIN_DIR) else _PACKAGE_GIN_DIR
  return [os.path.abspath(ours), _T5_GIN_DIR]


def _check_model_dir(model_dir):
  probe = os.path.join(model_dir, ".write_probe_%s" % uuid.uuid4().hex)
  try:
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(probe, "w") as f:
      f.write("")
    tf.io.gfile.remove(probe)
  except (tf.errors.OpError, OSError) as e:
    raise UsageError("model_dir %s is not writable (%s): pass a --model_dir "
                     "you can write to" % (model_dir, _first_line(e))) from e


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


def _check_mixture_or_task(name):
  if not isinstance(name, str):
    return
  known = sorted(set(seqio.TaskRegistry.names()) |
                 set(seqio.MixtureRegistry.names()))
  if name not in known:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = ("did you mean %s?" % ", ".join(close)) if close else (
        "list them with `python -m tasks list`")
    raise UsageError("unknown task or mixture %r: %s (or add its module with "
                     "--module_import)" % (name, hint))


def _check_sequence_length():
  sequence_length = _bound("utils.run.sequence_length")
  max_length = _bound("transformer.Unitransformer.max_length")
  if isinstance(sequence_length, int):
    sequence_length = {"inputs": sequence_length, "targets": sequence_length}
  if not isinstance(sequence_length, dict) or not isinstance(max_length, int):
    return
  for feature, length in sequence_length.items():
    if length > max_length:
      raise UsageError(
          "sequence_length[%r] = %d is longer than the model's max_length %d:"
          " lower utils.run.sequence_length or raise "
          "Unitransformer.max_length" % (feature, length, max_length))


def _preflight():
  """Parses the gin config once to check it, then clears it for t5's main."""
  for module in FLAGS.module_import or []:
    __import__(module)
  mtf_utils.parse_gin_defaults_and_flags(
      skip_unknown=(FLAGS.skip_all_gin_unknowns or (
          mesh_transformer.DEPRECATED_GIN_REFERENCES +
          tuple(FLAGS.additional_deprecated_gin_references))),
      finalize_config=False)
  _check_mixture_or_task(_bound("mesh_transformer.get_vocabulary."
                                "mixture_or_task_name"))
  if FLAGS.use_model_api:
    _check_mixture_or_task(FLAGS.mixture_or_task)
  _check_sequence_length()
  if not FLAGS.tpu:
    mesh_shape = _bound("utils.run.mesh_shape")
    mesh_devices = _bound("utils.run.mesh_devices")
    if isinstance(mesh_shape, str) and isinstance(mesh_devices, list):
      devices.check_mesh_devices(mesh_shape, mesh_devices)
    elif isinstance(mesh_shape, str):
      devices.local_mesh_devices(mesh_shape)  # raises if they don't fit
  gin.clear_config()


def main(argv):
  _check_model_dir(FLAGS.model_dir)
  for module in _TASK_MODULES:
    __import__(module)
  for path in gin_search_dirs() + list(FLAGS.gin_location_prefix or []):
    gin.add_config_file_search_path(path)
  defaults = ["runtime/defaults.gin"] + ([] if FLAGS.tpu else
                                         ["runtime/local.gin"])
  FLAGS.gin_file = defaults + list(FLAGS.gin_file or [])
  if FLAGS.use_model_api:
    # t5's main trains on --mixture_or_task but takes the vocabulary of
    # predict, score and export from the MIXTURE_NAME macro.
    FLAGS.gin_param = list(FLAGS.gin_param or []) + [
        "MIXTURE_NAME = %r" % FLAGS.mixture_or_task]
  _preflight()
  mesh_transformer_main.main(argv)


def _first_line(error):
  text = str(error).strip() or type(error).__name__
  return text.splitlines()[0]


# Errors caused by what the user passed; anything else keeps its traceback.
_USER_ERRORS = (ValueError, KeyError, IOError, FloatingPointError,
                tf.errors.NotFoundError, tf.errors.PermissionDeniedError,
                tf.errors.InvalidArgumentError)


def _run_with_one_line_errors(argv):
  try:
    main(argv)
  except _USER_ERRORS as e:
    if os.environ.get("MTF_SYNTH_TRACEBACK"):
      raise
    message = _first_line(e)
    if "No configurable matching" in message:
      message += (" (check the spelling, or import the module defining it "
                  "with --module_import or an `import` line in the gin file)")
    elif "Unable to open file" in message:
      message += " (gin files are searched in: %s)" % ", ".join(
          gin_search_dirs())
    print("mtf_synth: error: %s" % message, file=sys.stderr)
    print("mtf_synth: (set MTF_SYNTH_TRACEBACK=1 to see the traceback)",
          file=sys.stderr)
    sys.exit(2)


def console_main():
  tf.disable_v2_behavior()
  tf.logging.set_verbosity(tf.logging.INFO)
  app.run(_run_with_one_line_errors)


if __name__ == "__main__":
  console_main()
