"""The HF transformers T5 peer (PyTorch, CPU) at the configs of bench/.

train: issue 13's model (bench/peer_model.gin: 2+2 layers, d_model 256,
d_ff 1024, 4 heads x 64, vocabulary 2048, batch 16 x 128/128, Adafactor),
STEPS training steps on random tokens; reports its start-up stages like
bench/train_same.py (imports, model built, first step, last step) and the
median step after the first two.

generate: a size of bench/decode_sizes.py (--size, default demo), BATCHES
calls of `generate` of exactly its decode_length new tokens per row;
reports the tokens generated. --profile_batch N: torch.profiler's op profile of the
Nth call, reported as `op_profile` (bench/profiles.py).

torch is not a project dependency: run with PYTHONPATH holding the torch of
bench/setup_peers.sh.

  python bench/hf_t5.py train [--threads N] [--device cuda] [--bf16] STEPS
  python bench/hf_t5.py generate [--beams 4] [--size 512] [--threads N] BATCHES
"""

import argparse
import contextlib
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode_sizes  # noqa: E402  pylint: disable=g-import-not-at-top
import harness  # noqa: E402  pylint: disable=g-import-not-at-top

figures = {}


def stage(name):
  harness.mark_stage(figures, name)


stage("interpreter")
import torch  # noqa: E402  pylint: disable=g-import-not-at-top
import transformers  # noqa: E402  pylint: disable=g-import-not-at-top
from transformers.optimization import Adafactor  # noqa: E402  pylint: disable=g-import-not-at-top

stage("imports")
# Sizes as bench/peer_model.gin (train) and bench/decode_sizes.py (generate).
TRAIN = dict(d_model=256, d_ff=1024, num_heads=4, d_kv=64, vocab_size=2048,
             batch=16, length=128)


def t5(size):
  config = transformers.T5Config(
      vocab_size=size["vocab_size"], d_model=size["d_model"],
      d_kv=size["d_kv"], d_ff=size["d_ff"], num_heads=size["num_heads"],
      num_layers=2, num_decoder_layers=2, dropout_rate=0.0,
      feed_forward_proj="relu", tie_word_embeddings=True, pad_token_id=0,
      eos_token_id=1, decoder_start_token_id=0)
  torch.manual_seed(0)
  return transformers.T5ForConditionalGeneration(config)


def random_ids(size, generator, length=None):
  return torch.randint(3, size["vocab_size"],
                       (size["batch"], length or size["length"]),
                       generator=generator)


def train(steps, device, bf16=False):
  """STEPS Adafactor steps; with bf16 the forward and backward run under
  torch.autocast(bfloat16) (weights and the update stay float32), as
  mtf_synth's bfloat16 activations keep float32 master weights."""
  model = t5(TRAIN).to(device)
  optimizer = Adafactor(model.parameters(), lr=1e-3, relative_step=False,
                        scale_parameter=False, warmup_init=False)
  generator = torch.Generator().manual_seed(0)
  stage("graph_built")
  step_ends = []
  for _ in range(steps):
    with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
      loss = model(input_ids=random_ids(TRAIN, generator).to(device),
                   labels=random_ids(TRAIN, generator).to(device)).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    loss = float(loss)  # waits for the device: the step has ended
    step_ends.append(time.perf_counter())
    if len(step_ends) == 1:
      stage("first_step")
  stage("last_step")
  step_times = [b - a for a, b in zip(step_ends, step_ends[1:])]
  harness.report(steps=steps, loss=loss, step_median_s=(
      statistics.median(step_times[1:]) if len(step_times) > 1 else None),
                 **figures)


@contextlib.contextmanager
def op_profile(enabled):
  """torch.profiler over the block, summarised as bench/step_stats.py does:
  per op, its self CPU seconds and calls (the calling thread's)."""
  if not enabled:
    yield
    return
  start = time.perf_counter()
  with torch.profiler.profile(
      activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
    yield
  wall_s = time.perf_counter() - start
  by_type = {event.key: [event.self_cpu_time_total / 1e6, event.count]
             for event in profile.key_averages()}
  figures["op_profile"] = {
      "runs": 1, "wall_s": wall_s,
      "op_s": sum(s for s, _ in by_type.values()),
      "ops": sum(n for _, n in by_type.values()), "by_type": by_type}


def generate(batches, beams, size_name, profile_batch=0):
  size = dict(decode_sizes.SIZES[size_name], vocab_size=decode_sizes.VOCAB_SIZE)
  decode_length = size["decode_length"]
  model = t5(size).eval()
  generator = torch.Generator().manual_seed(0)
  tokens, times = 0, {"wall_s": [], "cpu_s": []}
  with torch.no_grad():
    for batch in range(1, batches + 1):
      inputs = random_ids(size, generator, size["input_length"])
      start = time.perf_counter(), time.process_time()
      with op_profile(batch == profile_batch):
        output = model.generate(
            inputs, num_beams=beams, do_sample=False,
            max_new_tokens=decode_length, min_new_tokens=decode_length)
      times["wall_s"].append(time.perf_counter() - start[0])
      times["cpu_s"].append(time.process_time() - start[1])
      # Every row runs decode_length steps (min = max new tokens); count
      # steps, not non-padding ids (an untrained model may emit id 0).
      tokens += output.shape[0] * (output.shape[1] - 1)  # no start token
  stage("last_step")
  harness.report(tokens=tokens, tokens_per_batch=size["batch"] * decode_length,
                 batch_times=times, **figures)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("mode", choices=["train", "generate"])
  parser.add_argument("count", type=int, help="steps or batches")
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  parser.add_argument("--beams", type=int, default=1)
  parser.add_argument("--size", choices=sorted(decode_sizes.SIZES),
                      default="demo", help="generate: bench/decode_sizes.py")
  parser.add_argument("--device", default="cpu")
  parser.add_argument("--bf16", action="store_true",
                      help="train: bfloat16 autocast")
  parser.add_argument("--profile_batch", type=int, default=0)
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  figures["threads"] = args.threads
  if args.mode == "train":
    train(args.count, args.device, args.bf16)
  else:
    generate(args.count, args.beams, args.size, args.profile_batch)


if __name__ == "__main__":
  main()
