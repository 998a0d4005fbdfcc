"""The training step the layer benchmarks time (bench_kernels, bench_synthesizer).

A Unitransformer of given layers (pre-norm residual sublayers, no dropout),
random byte tokens, Adafactor, one CPU device, lowered by mesh TF and run in
a v1 Session. Imports TF and mesh TF: import it in child processes only (a
parent's memory counts into its children's peak RSS).
"""

import mtf_synth  # noqa: F401  (compat before mesh TF)  pylint: disable=unused-import

import mesh_tensorflow as mtf  # pylint: disable=g-import-not-at-top
from mesh_tensorflow.transformer import transformer
import numpy as np
import tensorflow.compat.v1 as tf

BYTE_VOCAB = 256


class TrainStep:
  """One Adafactor training step of `layers` on a fixed random batch."""

  def __init__(self, layers, d_model, batch, length, causal, threads=2):
    tf.disable_v2_behavior()
    tf.reset_default_graph()
    for i, layer in enumerate(layers):
      layer.set_name("layer_%03d" % i)
    stack = transformer.LayerStack(
        layers, sublayers_initial=[],
        sublayers_per_layer=[transformer.sublayer_rms_norm,
                             transformer.sublayer_call_layer,
                             transformer.sublayer_residual],
        sublayers_final=[transformer.sublayer_rms_norm])
    model = transformer.Unitransformer(
        stack, d_model=d_model, input_vocab_size=BYTE_VOCAB,
        output_vocab_size=BYTE_VOCAB, autoregressive=causal,
        max_length=length, name="model")
    graph = mtf.Graph()
    mesh = mtf.Mesh(graph, "mesh")
    tokens = np.random.RandomState(0).randint(2, BYTE_VOCAB, (batch, length))
    targets = mtf.import_tf_tensor(
        mesh, tf.constant(tokens, tf.int32),
        [mtf.Dimension("batch", batch), mtf.Dimension("length", length)])
    inputs = transformer.autoregressive_inputs(targets) if causal else targets
    _, loss = model.call_simple(inputs, targets, compute_loss=True,
                                mode="train")
    variables = graph.trainable_variables
    grads = mtf.gradients([loss], [v.outputs[0] for v in variables])
    updates = mtf.optimize.AdafactorOptimizer().apply_grads(grads, variables)
    mesh_impl = mtf.placement_mesh_impl.PlacementMeshImpl(
        mtf.Shape([]), mtf.LayoutRules([]), ["/cpu:0"])
    lowering = mtf.Lowering(graph, {mesh: mesh_impl})
    self._fetches = [lowering.export_to_tf_tensor(loss), tf.group(
        [lowering.lowered_operation(op) for op in updates])]
    self._session = tf.Session(config=tf.ConfigProto(
        intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1))
    self._session.run(tf.global_variables_initializer())
    self._session.run(lowering.copy_masters_to_slices())

  def run(self):
    """One step; returns the loss."""
    return float(self._session.run(self._fetches)[0])

  def traced_peak_bytes(self):
    """Most bytes TF's CPU allocator held during one (traced) step."""
    metadata = tf.RunMetadata()
    self._session.run(self._fetches, run_metadata=metadata,
                      options=tf.RunOptions(
                          trace_level=tf.RunOptions.FULL_TRACE))
    return max((m.allocator_bytes_in_use
                for device in metadata.step_stats.dev_stats
                for node in device.node_stats for m in node.memory),
               default=0)

  def close(self):
    self._session.close()
