"""mtf_synth.layers.masks against numpy, and every layer's padding rule
against mesh TF's SelfAttention."""

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
from mesh_tensorflow.transformer import transformer_layers
import mtf_harness
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import mtf_synth
from mtf_synth.attention import synthesizer as synth
from mtf_synth.layers import masks
from test_kernel_attention import LENGTH
from test_kernel_attention import logits_of
from test_kernel_attention import make_model
from test_kernel_attention import random_ids

BATCH, LEN = 2, 6
# Row 0: two packed examples (3 + 2) and padding; row 1: one example.
SEQUENCE_ID = np.array([[1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 1, 1]])
# Two targets of row 1's example, as mesh TF's subsequence_id.
SUBSEQUENCE_ID = np.array([[1, 1, 1, 2, 2, 0], [1, 1, 2, 2, 2, 3]])
MASKED = np.float32(-1e9)


def mask_outputs(**context_ids):
  """Runs every mask function on a Context built from numpy `context_ids`
  (sequence_id, read_priority, ...: [batch, length] or [length] int
  arrays, an int, or None) in mode `mode` (default "eval"); returns
  {name: numpy array or None}, query x key masks as [.., length,
  memory_length] (batch first when present)."""
  mode = context_ids.pop("mode", "eval")
  outputs, missing = {}, []

  def build(mesh):
    batch = mtf.Dimension("batch", BATCH)
    length = mtf.Dimension("length", LEN)

    def tensor(value):
      if not isinstance(value, np.ndarray):
        return value
      dims = [batch, length] if value.ndim == 2 else (
          [length] if value.shape == (LEN,) else [batch])
      return mtf.import_tf_tensor(mesh, tf.constant(value, tf.int32), dims)

    context = transformer.Context(
        model=None, mesh=mesh, batch_dims=[batch], length_dim=length,
        variable_dtype=mtf.VariableDType(tf.float32), mode=mode,
        **{k: tensor(v) for k, v in context_ids.items()})
    memory = masks.memory_length(context)
    assert memory == mtf.Dimension("memory_length", LEN)
    results = {
        "nonpadding": masks.nonpadding(context, tf.float32),
        "memory_nonpadding": masks.memory_nonpadding(context, tf.float32),
        "same_example": masks.same_example(context),
        "causal": masks.causal(context),
        "bias": masks.attention_bias(context)}
    for name, result in results.items():
      if result is None:
        missing.append(name)
        continue
      order = [d for d in (batch, length, memory) if d in result.shape]
      assert set(order) == set(result.shape.dims), (name, result.shape)
      outputs[name] = mtf.cast(mtf.transpose(result, order), tf.float32)
    # The renamed tensor is the same values over the other dim name.
    outputs["renamed_range"] = mtf.to_float(masks.to_memory_length(
        context, mtf.range(mesh, length, tf.int32)))
    assert outputs["renamed_range"].shape.dims == [memory]
    return outputs

  values = mtf_harness.run_mtf(build)
  np.testing.assert_array_equal(values.pop("renamed_range"), np.arange(LEN))
  values.update((name, None) for name in missing)
  return values


def visible_bias(visible):
  return np.where(visible, 0.0, MASKED).astype(np.float32)


def test_padding_is_sequence_id_zero():
  got = mask_outputs(sequence_id=SEQUENCE_ID)
  nonpadding = (SEQUENCE_ID != 0).astype(np.float32)
  np.testing.assert_array_equal(got["nonpadding"], nonpadding)
  np.testing.assert_array_equal(got["memory_nonpadding"], nonpadding)
  assert got["causal"] is None  # an encoder


def test_token_ids_are_not_padding():
  """Mesh TF's rule (Context.nonpadding): without a sequence_id nothing is
  padding, whatever the ids; a decoder's shifted inputs start with 0."""
  ids = np.array([[0, 5, 6, 0, 0, 0], [0, 3, 4, 5, 6, 7]])
  got = mask_outputs(inputs=ids)
  assert all(value is None for value in got.values()), got
  # mesh TF's "no ids" (decoding) is the int 1
  assert mask_outputs(sequence_id=1, inputs=ids)["nonpadding"] is None


def test_packing_sees_only_the_same_example():
  got = mask_outputs(sequence_id=SEQUENCE_ID)
  same = SEQUENCE_ID[:, :, None] == SEQUENCE_ID[:, None, :]
  np.testing.assert_array_equal(got["same_example"], same)
  np.testing.assert_array_equal(got["bias"], visible_bias(same))
  # Row 0: query 1 sees keys 0..2 (its example), not 3, 4 or padding 5.
  np.testing.assert_array_equal(got["same_example"][0, 1],
                                [1, 1, 1, 0, 0, 0])


def test_subsequence_id_separates_targets():
  got = mask_outputs(sequence_id=SEQUENCE_ID, subsequence_id=SUBSEQUENCE_ID)
  same = SUBSEQUENCE_ID[:, :, None] == SUBSEQUENCE_ID[:, None, :]
  np.testing.assert_array_equal(got["same_example"], same)
  # padding still comes from sequence_id, as Context.nonpadding
  np.testing.assert_array_equal(got["nonpadding"], SEQUENCE_ID != 0)


def test_causal_decoder_with_packing():
  positions = np.arange(LEN)
  got = mask_outputs(sequence_id=SEQUENCE_ID, read_priority=positions,
                     write_priority=positions)
  lower = positions[:, None] >= positions[None, :]
  np.testing.assert_array_equal(got["causal"], lower)
  same = SEQUENCE_ID[:, :, None] == SEQUENCE_ID[:, None, :]
  np.testing.assert_array_equal(got["bias"], visible_bias(lower & same))


def test_prefix_lm_sees_its_whole_prefix():
  """Mesh TF's input_full_attention priorities: 0 over the prefix (3
  positions here), the position after it."""
  priority = np.arange(LEN) * (np.arange(LEN) >= 3)
  got = mask_outputs(read_priority=priority, write_priority=priority)
  visible = priority[:, None] >= priority[None, :]
  assert visible[0, 2] and not visible[2, 3] and not visible[3, 4]
  np.testing.assert_array_equal(got["causal"], visible)
  np.testing.assert_array_equal(got["bias"], visible_bias(visible))


def test_incremental_step_sees_positions_up_to_its_own():
  """A decode step: position and read_priority over batch only, the cache's
  write_priority over length; mesh TF's sequence_id is the int 1."""
  step = np.array([2, 4])
  got = mask_outputs(mode="incremental", position=step, read_priority=step,
                     write_priority=np.arange(LEN), sequence_id=1)
  visible = np.arange(LEN)[None, :] <= step[:, None]
  np.testing.assert_array_equal(got["causal"], visible)
  np.testing.assert_array_equal(got["bias"], visible_bias(visible))
  assert got["nonpadding"] is None and got["same_example"] is None


SELF_ATTENTION_LAYERS = {
    "mesh_tf_self_attention": lambda: transformer_layers.SelfAttention(
        num_heads=2, key_value_size=8),
    "synthesizer": lambda: mtf_synth.SynthesizerAttention(
        mode="+".join(synth.COMPONENTS), num_heads=2, key_value_size=8,
        max_length=LENGTH),
    "kernel_attention": lambda: mtf_synth.KernelAttention(
        kernel="gmm_prf", num_heads=2, key_value_size=8),
    "linformer": lambda: mtf_synth.Linformer(
        num_heads=2, key_value_size=8, projected_length=4),
    "lightweight_convolution": lambda: mtf_synth.LightweightConvolution(
        kernel_size=3, num_heads=2),
    "dynamic_convolution": lambda: mtf_synth.DynamicConvolution(
        kernel_size=3, num_heads=2),
}


@pytest.mark.parametrize("layer", sorted(SELF_ATTENTION_LAYERS))
def test_every_encoder_layer_pads_where_sequence_id_says(layer):
  """Every layer treats padding as mesh TF's SelfAttention does: id 0 is
  padding only where sequence_id is 0. (Before masks.py, KernelAttention,
  Linformer and the convolutions also read context.inputs == 0 as padding
  when the Context had no sequence_id, e.g. mesh TF's "aligned" and
  prefix-LM Unitransformers unpacked: their outputs changed.)"""
  model = make_model([SELF_ATTENTION_LAYERS[layer]()], False, name="encoder")
  ids = random_ids()
  ids[:, 8:] = 0

  def build(mesh):
    return {
        "none": logits_of(model, ids, sequence_id=None)(mesh),
        "ones": logits_of(model, ids, sequence_id=lambda inputs: mtf.ones(
            mesh, inputs.shape, tf.int32))(mesh),
        "padded": logits_of(model, ids)(mesh)}

  out = mtf_harness.run_mtf(build)
  np.testing.assert_allclose(out["none"], out["ones"], rtol=1e-6, atol=1e-6)
  # ... and a sequence_id's zeros do mask: real positions change.
  assert np.abs(out["padded"][:, :8] - out["ones"][:, :8]).max() > 1e-4
