"""The TPU path builds its graph: SimdMeshImpl inside tpu.replicate.

No TPU is reachable here, so the step is built, not run, on a synthetic
2x2 slice (4 chips of 2 cores: a v3-8, one host).
"""

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
from mesh_tensorflow.transformer import transformer_layers
from mesh_tensorflow.transformer import utils as mtf_utils
import numpy as np
import tensorflow.compat.v1 as tf

from mtf_synth.runtime import estimator as estimator_lib


def _synthetic_device_assignment():
  coordinates = [[x, y, 0, core] for y in range(2) for x in range(2)
                 for core in range(2)]
  topology = tf.tpu.experimental.Topology(
      mesh_shape=[2, 2, 1, 2],
      device_coordinates=np.array([coordinates], dtype=np.int32))
  return tf.tpu.experimental.DeviceAssignment.build(topology, num_replicas=8)


def _stack(name, is_decoder):
  layers = [transformer_layers.SelfAttention(num_heads=2, key_value_size=4)]
  if is_decoder:
    layers.append(transformer_layers.EncDecAttention(num_heads=2,
                                                     key_value_size=4))
  layers.append(transformer_layers.DenseReluDense(hidden_size=16))
  return transformer.Unitransformer(
      transformer.LayerStack(
          layers, sublayers_initial=[],
          sublayers_per_layer=[transformer.sublayer_rms_norm,
                               transformer.sublayer_call_layer,
                               transformer.sublayer_residual],
          sublayers_final=[transformer.sublayer_rms_norm]), d_model=8, input_vocab_size=16,
      output_vocab_size=16 if is_decoder else None,
      autoregressive=is_decoder, max_length=8, name=name)


def _input_fn(params):
  batch = params["batch_size"]
  ids = tf.ones([batch, 8], tf.int32)
  return tf.data.Dataset.from_tensors({"inputs": ids, "targets": ids}).repeat()


def test_tpu_train_step_builds_with_simd_mesh(tmp_path):
  mesh_shape = mtf.convert_to_shape("model:2,batch:4")
  layout_rules = mtf.convert_to_layout_rules("batch:batch,d_ff:model")
  model = transformer.Bitransformer(_stack("encoder", False),
                                    _stack("decoder", True))
  model_fn = mtf_utils.tpu_estimator_model_fn(
      model_type="bitransformer", transformer_model=model, vocabulary=None,
      model_dir=str(tmp_path), use_tpu=True, mesh_shape=mesh_shape,
      layout_rules=layout_rules, batch_size=8,
      sequence_length={"inputs": 8, "targets": 8}, autostack=True,
      keep_checkpoint_max=1, save_checkpoints_steps=10,
      learning_rate_schedule=0.01, optimizer=mtf.optimize.AdafactorOptimizer)
  estimator = estimator_lib.TPUEstimator(
      model_fn, config=estimator_lib.RunConfig(model_dir=str(tmp_path)),
      use_tpu=True, train_batch_size=8)
  estimator._device_assignment = _synthetic_device_assignment()  # pylint: disable=protected-access
  with tf.Graph().as_default() as graph:
    spec, _ = estimator._build(_input_fn, estimator_lib.ModeKeys.TRAIN)  # pylint: disable=protected-access
    metadata = [op for op in graph.get_operations()
                if op.type == "TPUReplicateMetadata"]
    assert len(metadata) == 1
    assert metadata[0].get_attr("num_replicas") == 8
    op_types = {op.type for op in graph.get_operations()}
    # SimdMeshImpl's collectives, not PlacementMeshImpl's per-device copies.
    assert op_types & {"CrossReplicaSum", "AllToAll", "CollectivePermute"}
    assert spec.loss.dtype == tf.float32 and spec.loss.shape.ndims == 0
    assert spec.train_op is spec.loss.op
