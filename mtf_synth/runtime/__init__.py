"""mtf_synth's replacement for the Estimator that mesh TF and t5 run on.

The call path of `mtf_synth --mode=... train` (line numbers: t5 0.9.4, mesh
TF 0.1.21):

1. mtf_synth/cli.py `main` checks the flags and gin (`preflight`, which
   parses gin and clears it again), then calls
   t5/models/mesh_transformer_main.py `main`, which parses gin itself
   (line 174) and calls mesh TF's `utils.run` (line 279), or `MtfModel`
   (line 188) with --use_model_api.
2. mesh_tensorflow/transformer/utils.py `run` (line 2772) builds the
   estimator with `get_estimator` (line 1992), which calls
   `tpu_estimator.TPUEstimator(...)` (line 2096). utils.py imports
   `tpu_estimator` from `tensorflow.python.tpu` (line 52), a module TF 2.16
   removed: mtf_synth/compat.py `_estimator_modules` puts
   mtf_synth.runtime.estimator in its place in `sys.modules`, so this is our
   `estimator.TPUEstimator`.
3. `utils.run` calls `train_model` (line 2973), which calls
   `estimator.train` (line 2176); eval, infer and export call `evaluate`,
   `predict` and `export_saved_model` the same way.
4. estimator.py builds the graph (input_fn, then mesh TF's model_fn) and
   hands it to train_loop.py (`train`, `evaluate`, `predict`, `export`),
   which runs the sessions, hooks, checkpoints and summaries.

The other modules: cluster.py and devices.py (processes, hosts and mesh
devices), checkpoints.py (which checkpoint steps a model_dir holds),
summaries.py (reading the event files train_loop writes), model_dir_lock.py
(one trainer per model_dir), tpu.py (the TPU path).
"""
