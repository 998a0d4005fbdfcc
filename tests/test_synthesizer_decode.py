"""Greedy incremental (cached) decoding == greedy full-sequence decoding,
for every synthesizer component, decoder-only and encoder-decoder; beam
search through the cache == beam search recomputing every step; ragged
prompts and beam search with the decode loop compiled and op by op."""

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from mtf_harness import assert_beam_search_matches_full_recompute
from mtf_harness import beam_search_full_recompute
from mtf_harness import run_mtf
from test_synthesizer_models import COMPONENTS, LENGTH, VOCAB
from test_synthesizer_models import bitransformer, ints, logits_of
from test_synthesizer_models import unitransformer


def greedy_full_sequence(mesh, model, batch, length_dim, logits_fn,
                         prompts=None, never_end_token=None):
  """Greedy decoding by re-running the full sequence at every position.

  Each row continues its prompt (its nonzero leading ids, zeros after) from
  its own length; never_end_token is never picked (sample_autoregressive's
  never_end).
  """
  ids = prompts or mtf.zeros(mesh, mtf.Shape([batch, length_dim]), tf.int32)
  prompt_length = mtf.reduce_sum(mtf.to_int32(mtf.not_equal(ids, 0)),
                                 reduced_dim=length_dim)
  for t in range(length_dim.size):
    logits = mtf.gather(logits_fn(ids), t, length_dim)
    if never_end_token is not None:
      logits += mtf.one_hot(
          mtf.constant(mesh, never_end_token, dtype=tf.int32),
          model.output_vocab_dim, on_value=-1e9, off_value=0.0)
    token = mtf.sample_with_temperature(logits, model.output_vocab_dim, 0.0)
    position = mtf.constant(mesh, t, dtype=tf.int32)
    ids += token * mtf.one_hot(position, length_dim, dtype=tf.int32) * (
        mtf.to_int32(mtf.greater_equal(position, prompt_length)))
  return ids


def until_eos(ids, eos=1):
  """Each row up to and including its first EOS (decode stops there)."""
  rows = []
  for row in ids:
    stop = np.flatnonzero(row == eos)
    rows.append(row[:stop[0] + 1] if stop.size else row)
  return rows


@pytest.mark.parametrize("mode", COMPONENTS + ["random+dense+vanilla"])
def test_incremental_decode_equals_full_decode_decoder_only(mode):
  batch = mtf.Dimension("batch", 2)
  length_dim = mtf.Dimension("length", LENGTH)

  def build(mesh):
    model = unitransformer(mode)
    zeros = mtf.zeros(mesh, mtf.Shape([batch, length_dim]), tf.int32)
    incremental = model.sample_autoregressive(
        zeros, stop_at_token=None, temperature=0.0,
        has_partial_sequences=False)
    full = greedy_full_sequence(
        mesh, model, batch, length_dim,
        lambda ids: logits_of(model, transformer.autoregressive_inputs(ids)))
    return {"incremental": incremental, "full": full}

  out = run_mtf(build, seed=4)
  np.testing.assert_array_equal(out["incremental"], out["full"])
  assert len(np.unique(out["full"])) > 1  # not a degenerate constant decode


# Decode length = max_length is the case that crashed; a shorter one is slow.
@pytest.mark.parametrize("length", [pytest.param(5, marks=pytest.mark.slow), LENGTH])
@pytest.mark.parametrize("mode", COMPONENTS + ["random+vanilla"])
def test_ragged_prompts_decode_equals_full_decode(mode, length, compiled):
  """Prompts of lengths 3 and 2 continued to the end of `length` (up to the
  model's max_length). Mesh TF keeps stepping the row that is done while the
  other finishes, so the longer prompt's row runs past the end (position
  `length`); the decode must not fail there, and both rows must be the
  tokens a full recompute gives."""
  prompts_np = np.zeros((2, length), np.int32)
  prompts_np[0, :3], prompts_np[1, :2] = [5, 6, 7], [8, 9]

  def build(mesh):
    model = unitransformer(mode)
    prompts = ints(mesh, prompts_np)
    batch, length_dim = prompts.shape.dims
    incremental = model.sample_autoregressive(
        prompts, stop_at_token=1, never_end=True, temperature=0.0)
    full = greedy_full_sequence(
        mesh, model, batch, length_dim,
        lambda ids: logits_of(model, transformer.autoregressive_inputs(ids)),
        prompts=prompts, never_end_token=1)
    return {"incremental": incremental, "full": full}

  out = run_mtf(build, seed=4)
  np.testing.assert_array_equal(out["incremental"], out["full"])
  np.testing.assert_array_equal(out["full"] * (prompts_np > 0), prompts_np)
  assert np.all(out["full"][0, 3:] != 1) and np.all(out["full"][1, 2:] != 1)
  assert len(np.unique(out["full"][:, 3:])) > 1


@pytest.mark.parametrize("mode", COMPONENTS + ["factorized_random+vanilla"])
def test_incremental_decode_equals_full_decode_encoder_decoder(mode):
  inputs_np = np.random.RandomState(2).randint(2, VOCAB, size=(2, LENGTH))
  inputs_np[1, 5:] = 0  # padding

  def build(mesh):
    model = bitransformer(mode)
    inputs = ints(mesh, inputs_np)
    batch, length_dim = inputs.shape.dims
    incremental = model.decode(inputs, temperature=0.0)
    ones = mtf.ones(mesh, inputs.shape, tf.int32)
    full = greedy_full_sequence(
        mesh, model.decoder, batch, length_dim,
        lambda ids: model.call_simple(inputs, ids, compute_loss=False,
                                      mode="eval",
                                      decoder_sequence_id=ones)[0])
    return {"incremental": incremental, "full": full}

  out = run_mtf(build, seed=5)
  for incremental, full in zip(until_eos(out["incremental"]),
                               until_eos(out["full"])):
    np.testing.assert_array_equal(incremental, full)


@pytest.mark.parametrize("length", [pytest.param(5, marks=pytest.mark.slow), LENGTH])
@pytest.mark.parametrize("mode", COMPONENTS + ["random+dense+vanilla"])
def test_beam_search_incremental_equals_full_recompute(mode, length,
                                                     compiled):
  """Decoder-only, decoding `length` tokens (up to the model's max_length)."""
  assert_beam_search_matches_full_recompute(unitransformer(mode), length,
                                            seed=4)


@pytest.mark.parametrize("mode", COMPONENTS + ["random+vanilla"])
def test_beam_search_encoder_decoder_ragged_inputs(mode, compiled):
  """Inputs of lengths 3 and 2: beam search through the decode cache ==
  beam search recomputing every step, to the end of the sequence."""
  inputs_np = np.zeros((2, LENGTH), np.int32)
  inputs_np[0, :3], inputs_np[1, :2] = [5, 6, 7], [8, 9]

  def build(mesh):
    model = bitransformer(mode)
    inputs = ints(mesh, inputs_np)
    incremental = model.decode(inputs, beam_size=3, alpha=0.6)
    batch, length_dim = inputs.shape.dims
    zeros = mtf.zeros(mesh, mtf.Shape([batch, mtf.Dimension("beam", 3),
                                       length_dim]), tf.int32)
    full = beam_search_full_recompute(
        lambda ids: model.call_simple(
            inputs, ids, compute_loss=False, mode="eval",
            decoder_sequence_id=mtf.ones(mesh, ids.shape, tf.int32))[0],
        zeros, mtf.constant(mesh, LENGTH, dtype=tf.int32), alpha=0.6)
    return {"incremental": incremental, "full": full}

  out = run_mtf(build, seed=5)
  np.testing.assert_array_equal(out["incremental"], out["full"])
  assert len(np.unique(out["full"])) > 1
