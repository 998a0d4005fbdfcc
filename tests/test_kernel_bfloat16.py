"""KernelAttention under bfloat16 activations computes its kernel in float32.

gin/mesh/gpu.gin and tpu_2x2.gin set bfloat16 activations; the feature maps,
the states S, z and the normaliser must still be float32 (like mesh TF's
float32_logits for softmax), only the q/k/v/o projections bfloat16.
"""

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
import mtf_harness
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import mtf_synth
from mtf_synth.layers import kernel_attention
import test_kernel_layer_reference as reference

BFLOAT16 = mtf.VariableDType(tf.float32, tf.float32, tf.bfloat16)
FLOAT32 = mtf.VariableDType(tf.float32)
# Ops that round: products, elementwise functions, sums, min/max. (Scaling
# by a constant is left out: compute_q's d^-1/2 belongs to the bfloat16
# projection, and mtf ops take one dtype, so the feature maps' scalings are
# float32 when the products they feed are.)
ARITHMETIC = (mtf.EinsumOperation, mtf.SlicewiseOperation,
              mtf.ReduceOperation, mtf.BinaryOpWithBroadcasting,
              mtf.ScalarAddOperation)


def kernel_layer(kernel):
  return mtf_synth.KernelAttention(
      kernel=kernel, num_heads=reference.HEADS,
      key_value_size=reference.D_KV, num_features=32, causal_chunk_size=4)


def is_cast(op):
  return (isinstance(op, mtf.SlicewiseOperation)
          and op.outputs[0].dtype != op.inputs[0].dtype)


def rounds_outside_projections(op):
  """Arithmetic that is not part of a d_model <-> heads projection."""
  tensors = op.inputs + op.outputs
  if (not isinstance(op, ARITHMETIC) or is_cast(op)
      or not op.outputs[0].dtype.is_floating
      or (isinstance(op, mtf.EinsumOperation) and len(op.inputs) == 1)):
    return False  # a transpose, a cast or a comparison
  return all("d_model" not in t.shape.dimension_names for t in tensors)


def layer_graph_ops(layer, causal):
  """The mtf ops of one bfloat16 call of `layer` (graph only, not run)."""
  model = transformer.Unitransformer(
      layer_stack=mtf_harness.make_layer_stack([layer]),
      d_model=reference.D_MODEL, input_vocab_size=10, output_vocab_size=10,
      autoregressive=causal, max_length=reference.LENGTH)
  with tf.Graph().as_default():
    graph = mtf.Graph()
    mesh = mtf.Mesh(graph, "mesh")
    batch = mtf.Dimension("batch", reference.BATCH)
    length = mtf.Dimension("length", reference.LENGTH)
    context = transformer.Context(
        model=model, mesh=mesh, batch_dims=[batch], length_dim=length,
        variable_dtype=BFLOAT16, mode="train",
        position=mtf.range(mesh, length, tf.int32), position_is_default=True,
        sequence_id=mtf.import_tf_tensor(
            mesh, tf.constant(np.minimum(reference.padded_ids(), 1), tf.int32),
            [batch, length]))
    x = mtf.zeros(mesh, [batch, length, model.model_dim], tf.bfloat16)
    first_op = len(graph.operations)
    out = layer.call(context, x)
    return graph.operations[first_op:], out


@pytest.mark.parametrize("causal", [False, True], ids=["encoder", "decoder"])
@pytest.mark.parametrize("kernel", sorted(kernel_attention.KERNELS))
def test_kernel_math_is_float32_under_bfloat16(kernel, causal):
  ops, out = layer_graph_ops(kernel_layer(kernel), causal)
  kernel_ops = [op for op in ops if rounds_outside_projections(op)]
  not_float32 = [op.name for op in kernel_ops
                 if op.outputs[0].dtype != tf.float32]
  assert not not_float32
  # The checked ops include the feature map and the normaliser.
  names = {op.name.split("_")[0] for op in kernel_ops}
  assert names & {"exp", "cos"} and "reciprocal" in names, names
  assert out.dtype == tf.bfloat16
  projections = [op for op in ops if isinstance(op, mtf.EinsumOperation)
                 and not rounds_outside_projections(op)
                 and len(op.inputs) == 2]
  assert len(projections) == 4  # q, k, v, o
  assert all(op.outputs[0].dtype == tf.bfloat16 for op in projections)


@pytest.mark.parametrize("causal", [False, True], ids=["encoder", "decoder"])
@pytest.mark.parametrize("kernel", ["gmm_prf", "fastfood_rks",
                                    "generative_prf"])
def test_bfloat16_output_close_to_float32(kernel, causal):
  x = np.random.RandomState(1).randn(reference.BATCH, reference.LENGTH,
                                     reference.D_MODEL)
  ids = reference.padded_ids()
  want, variables = reference.run_layer(kernel_layer(kernel), causal, x, ids)
  got, _ = reference.run_layer(kernel_layer(kernel), causal, x, ids,
                               BFLOAT16, init_values=variables)
  # bfloat16 keeps 8 bits of mantissa: inputs, weights and the four
  # projections each round by up to 2^-9 relative.
  np.testing.assert_allclose(got, want, rtol=0.03,
                             atol=0.03 * np.abs(want).max())
  assert np.abs(got - want).max() > 0  # it did run in bfloat16


@pytest.mark.parametrize("kernel", ["gmm_prf", "fastfood_rks"])
def test_bfloat16_decoding_loops_with_float32_states(kernel):
  """Mesh TF's sampling and beam-search loops carry the float32 states of a
  bfloat16 model, and each greedy decode step is the argmax of a full
  recompute of the decoded sequence."""
  length, prefix, vocab = reference.LENGTH, 4, 13
  EOS = 1  # pylint: disable=invalid-name
  model = transformer.Unitransformer(
      layer_stack=mtf_harness.make_layer_stack([kernel_layer(kernel)] * 2),
      d_model=reference.D_MODEL, input_vocab_size=vocab,
      output_vocab_size=vocab, autoregressive=True, max_length=length,
      vocab_divisor=1, name="decoder")
  ids = np.random.RandomState(0).randint(2, vocab, size=(2, length))
  ids[:, prefix:] = 0

  def build(mesh):
    batch = mtf.Dimension("batch", 2)
    length_dim = mtf.Dimension("length", length)
    partial = mtf.import_tf_tensor(mesh, tf.constant(ids, tf.int32),
                                   [batch, length_dim])
    greedy = model.sample_autoregressive(
        partial, stop_at_token=EOS, never_end=True, temperature=0.0,
        variable_dtype=BFLOAT16)
    logits = model.call_simple(
        transformer.autoregressive_inputs(greedy), None, compute_loss=False,
        mode="eval", variable_dtype=BFLOAT16)[0]
    never_eos = mtf.one_hot(mtf.constant(mesh, EOS, dtype=tf.int32),
                            model.output_vocab_dim, on_value=-1e9,
                            dtype=logits.dtype)
    beams = mtf.zeros(mesh, [batch, mtf.Dimension("beam", 2), length_dim],
                      tf.int32)
    best = model.beam_search(
        beams, mtf.constant(mesh, length, dtype=tf.int32),
        variable_dtype=BFLOAT16)
    return {"greedy": greedy, "beam": best,
            "recomputed": mtf.argmax(logits + never_eos,
                                     model.output_vocab_dim)}

  out = mtf_harness.run_mtf(build)
  np.testing.assert_array_equal(out["greedy"][:, :prefix], ids[:, :prefix])
  np.testing.assert_array_equal(out["greedy"][:, prefix:],
                                out["recomputed"][:, prefix:])
  assert len(np.unique(out["greedy"][:, prefix:])) > 1
  assert out["beam"].shape == (2, length)
  assert ((out["beam"] >= 0) & (out["beam"] < vocab)).all()
