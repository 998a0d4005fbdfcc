"""A finished cell's numbers, from the event files (and decode outputs) its
`mtf_synth` runs wrote."""

import glob
import math
import os

from mtf_synth.runtime import summaries


def _last(series):
  return series[max(series)]


def metric_value(metric, column, scalars):
  """One number of a finished cell, or None when its events lack it.

  scalars: summaries.read_scalars(model_dir, recursive=True).
  """
  if metric == "loss":  # training loss, mean of the last 4 logs (less noise)
    series = scalars.get((".", "loss"), {})
    last = sorted(series)[-4:]
    return sum(series[s] for s in last) / len(last) if last else None
  if metric == "steps_per_sec":  # mean over logs, the first (warm-up) left out
    series = scalars.get((".", "steps_per_sec"), {})
    steps = sorted(series)
    values = [series[s] for s in steps[1:] or steps]
    return sum(values) / len(values) if values else None
  if metric == "perplexity":
    for (folder, tag), series in scalars.items():
      if folder.startswith("eval") and tag == "neg_log_perplexity":
        return math.exp(-_last(series))
    for (folder, tag), series in scalars.items():
      if folder.startswith("eval") and tag == "loss":
        return math.exp(_last(series))
    return None
  decode_dir = "%s_eval" % column.split
  found = {tag: _last(series) for (folder, tag), series in scalars.items()
           if folder == decode_dir and tag.startswith("eval/")}
  if metric == "average":  # GLUE-style: mean over tasks of their metrics' mean
    per_task = {}
    for tag, value in found.items():
      per_task.setdefault(tag.split("/")[1], []).append(value)
    means = [sum(v) / len(v) for v in per_task.values()]
    return sum(means) / len(means) if means else None
  values = [v for tag, v in found.items() if tag.split("/")[-1] == metric]
  return sum(values) / len(values) if values else None


def exact_match_by_prefix(prefix, column, model_dir):
  """Exact-match % of the last decodes whose input starts with `prefix:`.

  Splits a mixed task's score by its parts (e.g. reverse, which needs only
  positions, vs sort, which needs content), from the text files the decode
  eval writes beside its events.
  """
  folder = os.path.join(model_dir, "%s_eval" % column.split)
  predictions = sorted(glob.glob(os.path.join(folder, "*_predictions")),
                       key=lambda p: int(p.rsplit("_", 2)[-2]))
  if not predictions:
    return None
  task = os.path.basename(predictions[-1]).rsplit("_", 2)[0]
  lines = []
  for path in (os.path.join(folder, task + "_inputs"),
               os.path.join(folder, task + "_targets"), predictions[-1]):
    with open(path) as f:
      lines.append(f.read().splitlines())
  hits = [t.strip() == p.strip() for i, t, p in zip(*lines)
          if i.startswith(prefix + ":")]
  return 100.0 * sum(hits) / len(hits) if hits else None


def collect_metrics(column, model_dir):
  """{metric: value} of a finished cell: the column's, and the train loss."""
  scalars = summaries.read_scalars(model_dir, recursive=True)
  metrics = {m: (exact_match_by_prefix(m.split(":", 1)[1], column, model_dir)
                 if m.startswith("exact_match:") else
                 metric_value(m, column, scalars)) for m in column.metrics}
  metrics.setdefault("loss", metric_value("loss", column, scalars))
  return metrics
