"""Greedy incremental (cached) decoding == greedy full-sequence decoding,
for every synthesizer component, decoder-only and encoder-decoder; beam
search through the cache == beam search recomputing every step."""

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from mtf_harness import assert_beam_search_matches_full_recompute
from mtf_harness import run_mtf
from test_synthesizer_models import COMPONENTS, LENGTH, VOCAB
from test_synthesizer_models import bitransformer, ints, logits_of
from test_synthesizer_models import unitransformer


def greedy_full_sequence(mesh, model, batch, length_dim, logits_fn):
  """Greedy decoding by re-running the full sequence at every position."""
  ids = mtf.zeros(mesh, mtf.Shape([batch, length_dim]), tf.int32)
  for t in range(length_dim.size):
    logits = mtf.gather(logits_fn(ids), t, length_dim)
    token = mtf.sample_with_temperature(logits, model.output_vocab_dim, 0.0)
    position = mtf.constant(mesh, t, dtype=tf.int32)
    ids += token * mtf.one_hot(position, length_dim, dtype=tf.int32)
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


@pytest.mark.parametrize("mode", COMPONENTS + ["random+dense+vanilla"])
def test_beam_search_incremental_equals_full_recompute(mode):
  assert_beam_search_matches_full_recompute(unitransformer(mode), LENGTH,
                                            seed=4)
