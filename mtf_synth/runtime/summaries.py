"""Reads the TensorBoard scalars that training and evaluation write.

The writers: train_loop's progress hook (loss, steps_per_sec, tokens_per_sec
every log interval; the graph's summaries, e.g. learning_rate, every summary
interval) and train_loop.evaluate (eval metrics, in the eval folders); mesh
TF writes decode-eval metrics under `<split>_eval/`.
"""

import glob
import os

import tensorflow.compat.v1 as tf

_EVENT_FILES = "events.out.tfevents*"
# Before one writer owned the training scalars, the summary hook wrote a
# second `loss` series on another step base; the one kept is the one written
# beside steps_per_sec (as the fixed writer does).
_TRAINING_LOSS, _TRAINING_RATE = "loss", "steps_per_sec"


def _event_scalars(path):
  """[(step, {tag: value})] of one event file's summaries."""
  events = []
  try:
    for event in tf.train.summary_iterator(path):
      values = {v.tag: v.simple_value for v in event.summary.value
                if v.HasField("simple_value")}
      if values:
        events.append((event.step, values))
  except tf.errors.DataLossError:
    pass  # the last record of a killed writer; the ones before it count
  return events


def _without_old_duplicate_loss(events):
  if not any(_TRAINING_RATE in values for _, values in events):
    return events  # not a training folder (eval `loss` is the only one)
  return [(step, {tag: value for tag, value in values.items()
                  if tag != _TRAINING_LOSS or _TRAINING_RATE in values})
          for step, values in events]


def read_scalars(log_dir, recursive=False):
  """{(folder relative to log_dir, tag): {step: value}} of the event files
  in log_dir (and in every folder below it when recursive); a value written
  twice for one step (a resumed run) is the later file's."""
  pattern = (os.path.join(log_dir, "**", _EVENT_FILES) if recursive
             else os.path.join(log_dir, _EVENT_FILES))
  events_by_folder = {}
  for path in sorted(glob.glob(pattern, recursive=recursive)):
    folder = os.path.relpath(os.path.dirname(path), log_dir)
    events_by_folder.setdefault(folder, []).extend(_event_scalars(path))
  scalars = {}
  for folder, events in sorted(events_by_folder.items()):
    for step, values in _without_old_duplicate_loss(events):
      for tag, value in values.items():
        scalars.setdefault((folder, tag), {})[step] = value
  return scalars


def scalars(log_dir, tag):
  """{step: value} of one scalar in log_dir's own event files."""
  return read_scalars(log_dir).get((".", tag), {})
