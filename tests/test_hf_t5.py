"""Hugging Face T5 <-> mtf_synth checkpoint conversion (mtf_synth.hf_t5).

Without torch: a random T5 checkpoint in Hugging Face's layout (written with
safetensors.numpy) is imported, its weights are checked against an
independent name/layout table, exported and imported again. With torch
(skipped otherwise): a random transformers T5 gives the same logits as the
mtf_synth model converted from it, and as its export loaded back.
"""

import importlib.util
import json
import os
import subprocess
import sys

import mesh_tensorflow as mtf
import numpy as np
import pytest
from safetensors import numpy as safetensors_numpy
import tensorflow.compat.v1 as tf

from mtf_synth import hf_t5
import mtf_harness

VOCAB = 200  # not a multiple of 128: mesh TF pads it to 256
LAYOUTS = {
    "v1.0": {"feed_forward_proj": "relu", "tie_word_embeddings": True},
    "v1.1": {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False},
}


def hf_config(layout):
  return dict(LAYOUTS[layout], model_type="t5", vocab_size=VOCAB, d_model=16,
              d_kv=4, d_ff=24, num_heads=2, num_layers=2,
              num_decoder_layers=3, relative_attention_num_buckets=8,
              dropout_rate=0.0, is_encoder_decoder=True)


def hf_shapes(config):
  """{parameter: shape} of transformers' T5ForConditionalGeneration."""
  d, inner = config["d_model"], config["num_heads"] * config["d_kv"]
  shapes = {"shared.weight": [config["vocab_size"], d]}
  if not config["tie_word_embeddings"]:
    shapes["lm_head.weight"] = [config["vocab_size"], d]
  gated = config["feed_forward_proj"].startswith("gated")
  for stack, blocks in (("encoder", config["num_layers"]),
                        ("decoder", config["num_decoder_layers"])):
    shapes[stack + ".final_layer_norm.weight"] = [d]
    shapes[stack + ".block.0.layer.0.SelfAttention.relative_attention_bias."
           "weight"] = [config["relative_attention_num_buckets"],
                        config["num_heads"]]
    attention = ["SelfAttention"] + (["EncDecAttention"]
                                     if stack == "decoder" else [])
    for block in range(blocks):
      for layer, name in enumerate(attention + ["DenseReluDense"]):
        prefix = "%s.block.%d.layer.%d." % (stack, block, layer)
        shapes[prefix + "layer_norm.weight"] = [d]
        if name == "DenseReluDense":
          for wi in (["wi_0", "wi_1"] if gated else ["wi"]):
            shapes[prefix + "DenseReluDense.%s.weight" % wi] = [
                config["d_ff"], d]
          shapes[prefix + "DenseReluDense.wo.weight"] = [d, config["d_ff"]]
        else:
          for w in "qkv":
            shapes[prefix + "%s.%s.weight" % (name, w)] = [inner, d]
          shapes[prefix + "%s.o.weight" % name] = [d, inner]
  return shapes


def mtf_name(hf_parameter):
  """The mesh TF variable of a Hugging Face parameter (the reference)."""
  parts = hf_parameter.split(".")[:-1]  # drop ".weight"
  if parts == ["shared"]:
    return "shared/embedding"
  if parts == ["lm_head"]:
    return "decoder/logits/kernel"
  if parts[1] == "final_layer_norm":
    return parts[0] + "/rms_norm/scale"
  stack, _, block, _, layer, *rest = parts
  rest = (["rms_norm", "scale"] if rest == ["layer_norm"] else
          rest + ["kernel"] if rest[0] == "DenseReluDense" else rest)
  return "/".join([stack, "block_%03d" % int(block), "layer_%03d" % int(layer)]
                  + rest)


def mtf_layout(hf_parameter, array):
  """Mesh TF keeps [in, out] kernels and [vocab, d_model] embeddings."""
  if hf_parameter == "shared.weight":
    return np.pad(array, [(0, 256 - VOCAB), (0, 0)])
  if hf_parameter == "lm_head.weight":
    return np.pad(array.T, [(0, 0), (0, 256 - VOCAB)])
  return array.T


def write_random_hf_t5(path, layout, seed=0, **config_changes):
  config = dict(hf_config(layout), **config_changes)
  rng = np.random.RandomState(seed)
  weights = {k: rng.normal(size=shape).astype(np.float32)
             for k, shape in hf_shapes(config).items()}
  os.makedirs(path)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config, f)
  safetensors_numpy.save_file(weights, os.path.join(path, "model.safetensors"),
                              metadata={"format": "pt"})
  return weights


def read(checkpoint):
  return hf_t5.read_checkpoint(checkpoint)


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def imported(request, tmp_path_factory):
  """(layout, HF weights, HF dir, ImportReport) of a random HF T5."""
  root = tmp_path_factory.mktemp(request.param)
  weights = write_random_hf_t5(str(root / "hf"), request.param)
  report = hf_t5.import_hf_t5(str(root / "hf"), str(root / "mtf"))
  return request.param, weights, str(root / "hf"), report


def test_import_places_every_weight(imported):
  _, weights, _, report = imported
  values = read(report.checkpoint)
  assert values.pop("global_step") == 0
  assert sorted(values) == sorted(mtf_name(k) for k in weights)
  for name, array in weights.items():
    np.testing.assert_array_equal(values[mtf_name(name)],
                                  mtf_layout(name, array), err_msg=name)
  assert report.fresh == [] and report.unused == []


def test_sharded_safetensors_import_as_one_file_does(imported, tmp_path):
  """transformers' sharded layout: model.safetensors.index.json naming the
  file of each parameter."""
  layout, weights, _, report = imported
  names = sorted(weights)
  shards = {"model-0000%d-of-00002.safetensors" % (i + 1): names[i::2]
            for i in range(2)}
  sharded = tmp_path / "sharded"
  sharded.mkdir()
  (sharded / "config.json").write_text(json.dumps(hf_config(layout)))
  for shard, shard_names in shards.items():
    safetensors_numpy.save_file({k: weights[k] for k in shard_names},
                                str(sharded / shard), metadata={"format": "pt"})
  (sharded / "model.safetensors.index.json").write_text(json.dumps(
      {"weight_map": {k: shard for shard, shard_names in shards.items()
                      for k in shard_names}}))
  again = hf_t5.import_hf_t5(str(sharded), str(tmp_path / "mtf"))
  first, second = read(report.checkpoint), read(again.checkpoint)
  assert sorted(first) == sorted(second)
  for name in first:
    np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def test_export_round_trips(imported, tmp_path):
  layout, weights, _, report = imported
  architecture = hf_t5.export_hf_t5(os.path.dirname(report.checkpoint),
                                    str(tmp_path / "hf"))
  exported = safetensors_numpy.load_file(str(tmp_path / "hf" /
                                             "model.safetensors"))
  assert sorted(exported) == sorted(weights)
  # The rows mesh TF padded the vocabulary with (200 -> 256) are dropped.
  for name, array in weights.items():
    np.testing.assert_array_equal(exported[name], array, err_msg=name)
  with open(tmp_path / "hf" / "config.json") as f:
    config = json.load(f)
  assert config == dict(architecture.hf_config())
  expected = hf_config(layout)
  assert {k: config[k] for k in expected} == expected
  # mtf_synth -> Hugging Face -> mtf_synth gives the same checkpoint.
  again = hf_t5.import_hf_t5(str(tmp_path / "hf"), str(tmp_path / "mtf"))
  first, second = read(report.checkpoint), read(again.checkpoint)
  assert sorted(first) == sorted(second)
  for name in first:
    np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def test_gin_file_describes_the_architecture(imported):
  layout, _, _, report = imported
  with open(report.gin_file) as f:
    text = f.read()
  gated = layout == "v1.1"
  assert ("DenseReluDense.activation = %r" % (
      ["gelu", "linear"] if gated else "relu",)) in text
  assert ("shared_embedding_and_softmax_weights = %r" % (not gated)) in text
  with hf_t5.gin_model([report.gin_file], [], VOCAB) as model:
    architecture = hf_t5.T5Architecture.from_model(model, VOCAB)
  config = hf_config(layout)
  assert architecture == hf_t5.T5Architecture.from_hf_config(
      config, lm_head_is_embedding=not gated)
  assert (architecture.num_layers, architecture.num_decoder_layers,
          architecture.relative_attention_num_buckets) == (2, 3, 8)


@pytest.mark.parametrize("gin_param, message", [
    ("DenseReluDense.activation = 'sigmoid'", "no Hugging Face equivalent"),
    ("num_heads = 4", "does not match the gin model"),
])
def test_export_refuses_what_hugging_face_cannot_build(imported, tmp_path,
                                                       gin_param, message):
  _, _, _, report = imported
  with pytest.raises(hf_t5.ConversionError, match=message):
    hf_t5.export_hf_t5(report.checkpoint, str(tmp_path / "hf"),
                       gin_files=[report.gin_file], gin_params=[gin_param])


@pytest.fixture(scope="module")
def mixture(tmp_path_factory):
  """A random v1.1 HF T5 imported into a random+vanilla Synthesizer."""
  root = tmp_path_factory.mktemp("mixture")
  weights = write_random_hf_t5(str(root / "hf"), "v1.1")
  report = hf_t5.import_hf_t5(
      str(root / "hf"), str(root / "mtf"),
      gin_files=["layers/synthesizer.gin"],
      gin_params=["SynthesizerAttention.mode = 'random+vanilla'",
                  "SynthesizerAttention.max_length = 16"])
  return weights, report


def test_mixture_starts_from_vanilla_weights(mixture):
  weights, report = mixture
  values = read(report.checkpoint)
  heads = (2, 4)  # [d_model, heads * d_kv] split into heads and d_kv
  for stack, blocks in (("encoder", 2), ("decoder", 3)):
    for block in range(blocks):
      hf = "%s.block.%d.layer.0.SelfAttention." % (stack, block)
      ours = "%s/block_%03d/layer_000/SynthesizerAttention/" % (stack, block)
      for w, name in (("q", "vanilla/q"), ("k", "k"), ("v", "v")):
        np.testing.assert_array_equal(
            values[ours + name], weights[hf + w + ".weight"].T.reshape(
                (16,) + heads))
      np.testing.assert_array_equal(
          values[ours + "o"], weights[hf + "o.weight"].T.reshape(heads + (16,)))
      for fresh in ("random/table", "alpha_logits"):
        assert ours + fresh in report.fresh
  assert len(report.fresh) == 10
  assert report.unused == sorted(
      "%s.block.0.layer.0.SelfAttention.relative_attention_bias.weight" % s
      for s in ("decoder", "encoder"))
  # The written gin builds the mixture from this file alone.
  with hf_t5.gin_model([report.gin_file], [], VOCAB) as model:
    layer = model.encoder.layer_stack.layers[0]
    assert (layer.mode, layer.num_heads, layer.key_value_size) == (
        "random+vanilla", 2, 4)


def test_export_refuses_synthesizer_variables(mixture, tmp_path):
  _, report = mixture
  with pytest.raises(hf_t5.ConversionError, match="SynthesizerAttention"):
    hf_t5.export_hf_t5(report.checkpoint, str(tmp_path / "hf"))
  assert not (tmp_path / "hf").exists()


def test_command_line_refuses_synthesizer_checkpoint(mixture, tmp_path):
  _, report = mixture
  out = subprocess.run(
      [sys.executable, "-m", "mtf_synth.hf_t5", "export",
       os.path.dirname(report.checkpoint), str(tmp_path / "hf")],
      capture_output=True, text=True, timeout=300, check=False,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert out.returncode == 2, out.stderr
  errors = [l for l in out.stderr.splitlines()
            if l.startswith("mtf_synth.hf_t5: error:")]
  assert len(errors) == 1 and "SynthesizerAttention" in errors[0]
  assert "only vanilla-attention T5 models export" in errors[0]


def _main_error(capsys, argv):
  """The one `mtf_synth.hf_t5: error:` line of a command that exits 2."""
  with pytest.raises(SystemExit) as raised:
    hf_t5.main(argv)
  assert raised.value.code == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith("mtf_synth.hf_t5: error: ")
  return err


def test_command_line_user_errors_are_one_line(imported, tmp_path, capsys):
  _, _, hf_dir, report = imported
  model_dir = os.path.dirname(report.checkpoint)
  assert "has no config.json" in _main_error(
      capsys, ["import", str(tmp_path / "absent"), str(tmp_path / "a")])
  assert "gin cannot parse the config" in _main_error(
      capsys, ["import", hf_dir, str(tmp_path / "b"),
               "--gin_param=d_model = (16"])
  assert "no checkpoint at %s" % (tmp_path / "absent") in _main_error(
      capsys, ["export", str(tmp_path / "absent"), str(tmp_path / "c")])
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  assert "cannot write to %s" % (blocker / "hf") in _main_error(
      capsys, ["export", model_dir, str(blocker / "hf")])
  (tmp_path / "corrupt").mkdir()
  (tmp_path / "corrupt" / "config.json").write_text("{}")
  (tmp_path / "corrupt" / "model.safetensors").write_bytes(b"\x00" * 7)
  assert "model.safetensors cannot be read" in _main_error(
      capsys, ["import", str(tmp_path / "corrupt"), str(tmp_path / "d")])
  for output in "abd":  # a failed import writes nothing
    assert not (tmp_path / output).exists(), output


def test_command_line_bugs_keep_their_traceback(monkeypatch, tmp_path):
  def bug(*unused_args):
    raise KeyError("a bug, not the user's")
  monkeypatch.setattr(hf_t5, "import_hf_t5", bug)
  with pytest.raises(KeyError, match="a bug"):
    hf_t5.main(["import", str(tmp_path), str(tmp_path / "out")])


@pytest.mark.parametrize("change, message", [
    ({"feed_forward_proj": "gelu"}, "feed_forward_proj 'gelu'"),
    ({"relative_attention_max_distance": 64}, "max_distance"),
    ({"model_type": "bart"}, "model_type 'bart'"),
    ({"tie_word_embeddings": False}, "no separate lm_head with unscaled"),
])
def test_unsupported_configs_are_refused(change, message):
  with pytest.raises(hf_t5.ConversionError, match=message):
    hf_t5.T5Architecture.from_hf_config(dict(hf_config("v1.0"), **change),
                                        lm_head_is_embedding=True)


def test_transformers_5_v11_config_is_read_as_untied():
  # transformers >= 5 writes tie_word_embeddings = True for every T5.
  config = dict(hf_config("v1.1"), tie_word_embeddings=True,
                scale_decoder_outputs=False)
  architecture = hf_t5.T5Architecture.from_hf_config(
      config, lm_head_is_embedding=False)
  assert not architecture.tied and architecture.gated


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None,
                    reason="checks the error shown when torch is absent")
def test_pytorch_bin_without_torch_is_a_clear_error(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps(hf_config("v1.0")))
  (tmp_path / "pytorch_model.bin").write_bytes(b"")
  with pytest.raises(hf_t5.ConversionError, match="needs torch"):
    hf_t5.import_hf_t5(str(tmp_path), str(tmp_path / "mtf"))


# ---- with torch: logits against transformers ----


def random_transformers_t5(torch, transformers, layout, seed=0):
  """A random T5ForConditionalGeneration of `layout`, nothing left at 1/0."""
  torch.manual_seed(seed)
  model = transformers.T5ForConditionalGeneration(
      transformers.T5Config(**hf_config(layout)))
  if layout == "v1.1":
    model.lm_head.weight = torch.nn.Parameter(
        torch.randn_like(model.lm_head.weight))
  with torch.no_grad():
    for name, parameter in model.named_parameters():
      if "layer_norm" in name:
        parameter.copy_(1.0 + 0.2 * torch.randn_like(parameter))
  return model.eval()


INPUTS = np.array([[5, 17, 3, 199, 42, 1, 0, 0], [8, 9, 10, 11, 12, 13, 14, 1]])
TARGETS = np.array([[7, 3, 150, 2, 1], [4, 4, 99, 1, 6]])


def transformers_logits(torch, model):
  with torch.no_grad():
    decoder_inputs = np.pad(TARGETS[:, :-1], [(0, 0), (1, 0)])
    return model(input_ids=torch.tensor(INPUTS),
                 attention_mask=torch.tensor(INPUTS > 0),
                 decoder_input_ids=torch.tensor(decoder_inputs)
                 ).logits.numpy()[..., :VOCAB]


def mtf_synth_logits(report):
  values = read(report.checkpoint)

  def build(mesh):
    batch = mtf.Dimension("batch", 2)
    def ids(array):
      return mtf.import_tf_tensor(
          mesh, tf.constant(array, tf.int32),
          [batch, mtf.Dimension("length", array.shape[1])])
    return {"logits": hf_t5.call_model(model, ids(INPUTS), ids(TARGETS))}

  with hf_t5.gin_model([report.gin_file], [], VOCAB) as model:
    return mtf_harness.run_mtf(build, init_values=values)["logits"][
        ..., :VOCAB]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_logits_match_transformers_both_ways(layout, tmp_path):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  model = random_transformers_t5(torch, transformers, layout)
  model.save_pretrained(str(tmp_path / "hf"))
  expected = transformers_logits(torch, model)
  assert np.abs(expected).max() > 1.0  # not a degenerate model
  report = hf_t5.import_hf_t5(str(tmp_path / "hf"), str(tmp_path / "mtf"))
  assert report.fresh == [] and report.unused == []
  np.testing.assert_allclose(mtf_synth_logits(report), expected, atol=1e-4,
                             rtol=0)
  hf_t5.export_hf_t5(str(tmp_path / "mtf"), str(tmp_path / "back"))
  back = transformers.T5ForConditionalGeneration.from_pretrained(
      str(tmp_path / "back")).eval()
  np.testing.assert_allclose(transformers_logits(torch, back), expected,
                             atol=1e-4, rtol=0)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_pytorch_bin_imports_as_safetensors_do(layout, tmp_path):
  """transformers 4's pytorch_model.bin (the state dict, embedding copies
  and tied lm_head included) gives the checkpoint safetensors give."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  model = random_transformers_t5(torch, transformers, layout)
  model.save_pretrained(str(tmp_path / "safetensors"))
  os.makedirs(tmp_path / "bin")
  model.config.to_json_file(str(tmp_path / "bin" / "config.json"))
  torch.save(model.state_dict(), str(tmp_path / "bin" / "pytorch_model.bin"))
  from_bin = hf_t5.import_hf_t5(str(tmp_path / "bin"), str(tmp_path / "a"))
  from_safetensors = hf_t5.import_hf_t5(str(tmp_path / "safetensors"),
                                        str(tmp_path / "b"))
  assert from_bin.unused == []
  first, second = read(from_bin.checkpoint), read(from_safetensors.checkpoint)
  assert sorted(first) == sorted(second)
  for name in first:
    np.testing.assert_array_equal(first[name], second[name], err_msg=name)


@pytest.mark.slow
def test_command_line_fine_tunes_a_mixture_from_the_import(tmp_path):
  """`import` into random+vanilla, then train with init_checkpoint: the
  run starts from the converted weights (its step-0 checkpoint)."""
  from cli_runner import T5_TINY_ON_DEMO, mtf_synth  # pylint: disable=g-import-not-at-top
  # The demo task's byte vocabulary has 259 entries.
  write_random_hf_t5(str(tmp_path / "hf"), "v1.1", vocab_size=259)
  converted = subprocess.run(
      [sys.executable, "-m", "mtf_synth.hf_t5", "import",
       str(tmp_path / "hf"), str(tmp_path / "mtf"),
       "--gin_file=layers/synthesizer.gin",
       "--gin_param=SynthesizerAttention.max_length = 64"],
      capture_output=True, text=True, timeout=300, check=False)
  assert converted.returncode == 0, converted.stderr
  assert "freshly initialised (no Hugging Face counterpart) (10)" in (
      converted.stdout)
  run_dir = str(tmp_path / "run")
  args = [a for a in T5_TINY_ON_DEMO if "models/" not in a]
  run = mtf_synth(run_dir, *args,
                  "--gin_file=%s" % (tmp_path / "mtf" / "model.gin"),
                  "--gin_param=utils.run.init_checkpoint='%s'" % (
                      tmp_path / "mtf" / "model.ckpt-0"),
                  "--gin_param=utils.run.train_steps=1")
  assert run.returncode == 0, run.stderr[-3000:]
  started = read(os.path.join(run_dir, "model.ckpt-0"))
  for name, value in read(str(tmp_path / "mtf")).items():
    np.testing.assert_array_equal(started[name], value, err_msg=name)
