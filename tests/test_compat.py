"""mtf_synth/compat.py: its import hooks and its off-TPU beam search.

Import hooks: `import mtf_synth` hides TF's eager Keras import and defers the
packages that tensorflow_text and t5 import only for metrics
(_DEFERRED_IMPORTS / _HIDDEN_IMPORTS); t5's patches arrive when t5 does.
What start-up skips must still work when used. The start-up tests run in
fresh interpreters: this one has imported everything already.
"""

import json
import os
import subprocess
import sys
import textwrap

import mesh_tensorflow as mtf
import numpy as np
import tensorflow.compat.v1 as tf

from mtf_harness import run_mtf
from mtf_synth import compat
from test_synthesizer_models import unitransformer

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)
# Imported at start-up before compat deferred them; a run needs none of them.
NOT_AT_START = ("keras", "scipy", "sklearn", "matplotlib", "pandas", "nltk",
                "pyglove", "rouge_score.rouge_scorer")


def _fresh_python(code):
  """Runs `code` in a new interpreter; returns the JSON it prints last."""
  done = subprocess.run(
      [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
      capture_output=True, text=True, check=True,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_mtf_synth_skips_keras_scipy_jax_and_t5_then_patches_t5():
  found = _fresh_python("""
      import json, sys
      import mtf_synth
      loaded = sorted(m for m in %r + ("jax", "t5") if m in sys.modules)
      import tensorflow as tf
      dense = tf.keras.layers.Dense(3)(tf.ones([2, 4])).shape.as_list()
      import t5  # t5.models comes with it, as when mtf_synth imported it
      from mesh_tensorflow.transformer import utils
      print(json.dumps({
          "loaded": loaded, "keras_dense": dense,
          "mtf_model_patched": all(
              getattr(getattr(t5.models.MtfModel, name), "_mtf_synth_patched",
                      False) for name in ("train", "eval", "finetune")),
          "utils_patched": utils.write_lines_to_file._mtf_synth_patched}))
      """ % (NOT_AT_START,))
  assert found == {"loaded": [], "keras_dense": [2, 3],
                   "mtf_model_patched": True, "utils_patched": True}


def test_commands_import_no_metric_packages_and_metrics_still_compute():
  found = _fresh_python("""
      import json, sys
      import mtf_synth.cli, tasks
      loaded = sorted(m for m in %r if m in sys.modules)
      from t5.data import glue_utils
      from t5.evaluation import metrics
      from tasks import personachat
      targets, predictions = ["the cat sat on the mat", "a dog"], [
          "the cat sat on a mat", "a dog"]
      scores = {}
      for fn in (metrics.rouge, metrics.bleu, personachat.cider_tfidf,
                 personachat.meteor):
        scores.update(fn(targets, predictions))
      scores.update(metrics.f1_score_with_invalid([0, 1, 1], [0, 1, 0]))
      scores.update(metrics.pearson_corrcoef([1., 2., 3.], [1., 2., 4.]))
      scores.update(glue_utils.GLUE_METRICS["cola"][0]([0, 1, 1, 0],
                                                       [0, 1, 0, 0]))
      try:
        metrics.sklearn_metrics_wrapper("no_such_metric")([0], [0])
        unknown = "accepted"
      except ValueError as error:
        unknown = str(error)
      print(json.dumps({"loaded": loaded, "unknown": unknown, "scores": {
          k: round(float(v), 4) for k, v in scores.items()}}))
      """ % (NOT_AT_START,))
  assert found["loaded"] == []
  assert found["unknown"] == "sklearn.metrics does not have: no_such_metric"
  # The values these packages gave when imported eagerly (before the hooks).
  assert found["scores"] == {
      "rouge1": 91.6667, "rouge2": 80.0, "rougeLsum": 91.6667,
      "bleu": 55.8395, "cider_tfidf": 6.1563, "meteor_exact_stem": 84.0417,
      "f1": 66.6667, "pearson_corrcoef": 98.1981, "matthews_corrcoef": 57.735}


def _hooked_importer(tmp_path, monkeypatch, table, importer, imported,
                     **sources):
  """Writes `sources` as modules, then hooks `importer` as compat would
  with `imported` in `table` (_DEFERRED_IMPORTS or _HIDDEN_IMPORTS)."""
  for name, source in sources.items():
    (tmp_path / (name + ".py")).write_text(textwrap.dedent(source))
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setitem(table, importer, (imported,))
  monkeypatch.setattr(compat, "_HOOKED_MODULES",
                      compat._HOOKED_MODULES | {importer})
  for name in sources:
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_deferred_import_loads_on_first_attribute_read(tmp_path, monkeypatch):
  _hooked_importer(
      tmp_path, monkeypatch, compat._DEFERRED_IMPORTS,
      "mtf_synth_test_importer", "mtf_synth_test_heavy",
      mtf_synth_test_heavy="""
          LOADS = [1]
          VALUE = 42
          """,
      mtf_synth_test_importer="""
          import mtf_synth_test_heavy
          def use():
            return mtf_synth_test_heavy.VALUE
          """)
  import mtf_synth_test_importer  # pylint: disable=g-import-not-at-top
  assert "mtf_synth_test_heavy" not in sys.modules  # the stand-in left too
  assert mtf_synth_test_importer.use() == 42
  heavy = sys.modules["mtf_synth_test_heavy"]
  assert heavy.LOADS == [1] and heavy is not (
      mtf_synth_test_importer.mtf_synth_test_heavy)
  assert mtf_synth_test_importer.mtf_synth_test_heavy.LOADS is heavy.LOADS


def test_hidden_import_fails_only_while_its_importer_runs(tmp_path,
                                                           monkeypatch):
  _hooked_importer(
      tmp_path, monkeypatch, compat._HIDDEN_IMPORTS,
      "mtf_synth_test_guarded", "mtf_synth_test_optional",
      mtf_synth_test_optional="VALUE = 7\n",
      mtf_synth_test_guarded="""
          try:
            import mtf_synth_test_optional as optional
          except ImportError:
            optional = None
          """)
  import mtf_synth_test_guarded  # pylint: disable=g-import-not-at-top
  assert mtf_synth_test_guarded.optional is None
  import mtf_synth_test_optional  # pylint: disable=g-import-not-at-top
  assert mtf_synth_test_optional.VALUE == 7


def test_off_tpu_beam_search_gathers_per_example_with_the_same_beams():
  """Unitransformer.beam_search passes use_tpu=True, and with a layout and
  mesh shape mesh TF then gathers states across the whole batch x beam; off
  TPU compat withholds them. Both must pick the same beams (same seed, same
  weights)."""
  shortcut_taken = []

  def decode(building_for_tpu):
    def build(mesh):
      model = unitransformer("random+vanilla")
      model.layout = mtf.convert_to_layout_rules("")
      model.mesh_shape = mtf.convert_to_shape("")
      zeros = mtf.zeros(mesh, mtf.Shape([mtf.Dimension("batch", 3),
                                         mtf.Dimension("beam", 3),
                                         mtf.Dimension("length", 8)]),
                        tf.int32)
      token = compat._BUILDING_FOR_TPU.set(building_for_tpu)
      try:
        beams = model.beam_search(zeros, mtf.constant(mesh, 8, dtype=tf.int32),
                                  alpha=0.6)
      finally:
        compat._BUILDING_FOR_TPU.reset(token)
      loop_ops = [op for loop in mesh.graph.operations
                  for op in getattr(loop, "_body_ops", [])]
      shortcut_taken.append(any(  # the [batch x beam]^2 selector's dimension
          d.name == "old_combined" for op in loop_ops
          for t in op.outputs for d in t.shape.dims))
      return {"beams": beams}

    return run_mtf(build)["beams"]

  per_example, tpu_shortcut = decode(False), decode(None)
  assert shortcut_taken == [False, True]
  np.testing.assert_array_equal(per_example, tpu_shortcut)
  assert len(np.unique(per_example)) > 1
