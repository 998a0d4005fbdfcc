"""The learning curves' report: a Markdown table per column (each cell's
plateau step and numbers, then each row's mean and range over seeds), a
long-format CSV of every evaluated point, one plot per column, and the
commands."""

import csv
import os

import numpy as np
import sacrebleu

from mtf_synth.tables import curves
from mtf_synth.tables import report
from mtf_synth.tables.report import fmt

# (column, key of the validation curve plotted) -> panel title.
PANELS = {"debian_l10n_ende": (("validation/loss", "validation loss"),
                               ("validation/bleu", "validation BLEU"),
                               ("validation/placeholder_accuracy",
                                "validation placeholder accuracy %")),
          "debian_lm": (("validation/loss", "validation loss"),
                        ("validation/perplexity", "validation perplexity"))}
# Numbers of a finished cell in the table: validation at the stop step,
# then the test splits.
SHOWN = {"debian_l10n_ende": ("validation/loss", "validation/bleu",
                              "test/bleu", "test/placeholder_accuracy",
                              "heldout/bleu", "heldout/placeholder_accuracy"),
         "debian_lm": ("validation/loss", "validation/perplexity",
                       "test/perplexity")}


# The claims the curves judge: (row, baseline row, label).
COMPARISONS = (("random", "transformer", "R - Transformer"),
               ("random_vanilla", "transformer", "R+V - Transformer"),
               ("dense", "random", "D - R"))
# t5.evaluation.metrics.bleu's sacreBLEU settings (the tables' BLEU).
T5_BLEU = dict(smooth_method="exp", smooth_value=0.0, force=False,
               lowercase=False, tokenize="intl", effective_order=False)
RESAMPLES = 1000


def bleu_gap(targets, first, second, resamples=RESAMPLES, seed=0):
  """BLEU(first) - BLEU(second) on the same targets, and the 2.5 and 97.5
  percentiles of the gap over `resamples` paired bootstrap resamples of the
  sentences (sacreBLEU's sufficient statistics, as its paired test)."""
  bleu = sacrebleu.BLEU(**T5_BLEU)
  stats = [np.array(bleu._extract_corpus_statistics(  # pylint: disable=protected-access
      hypotheses, [targets]), dtype=np.float64)
           for hypotheses in (first, second)]

  def gap(rows):
    return (bleu._compute_score_from_stats(stats[0][rows].sum(0)).score -  # pylint: disable=protected-access
            bleu._compute_score_from_stats(stats[1][rows].sum(0)).score)  # pylint: disable=protected-access
  rng = np.random.default_rng(seed)
  gaps = [gap(rng.integers(0, len(targets), len(targets)))
          for _ in range(resamples)]
  return (gap(np.arange(len(targets))), float(np.percentile(gaps, 2.5)),
          float(np.percentile(gaps, 97.5)))


def bootstrap_lines(results):
  """Markdown rows: each claim's test BLEU gap with its interval, per split
  and per seed where both rows finished."""
  lines = []
  for row, baseline, label in COMPARISONS:
    for split in ("test", "heldout"):
      for seed in (0, 1, 2):
        cells = [results.get((r, "debian_l10n_ende", seed), {})
                 for r in (row, baseline)]
        if not all(c.get("status") == "ok" for c in cells):
          continue
        outputs = [c.get("decodes", {}).get(split) for c in cells]
        if None in outputs:
          scores = [_at_stop(c, "%s/bleu" % split) for c in cells]
          if None not in scores:  # the gap, but no decodes to resample
            lines.append("| %s | %s | %d | %+.2f | (decodes not kept) |" % (
                label, split, seed, scores[0] - scores[1]))
          continue
        gap, low, high = bleu_gap(outputs[0][0], outputs[0][1], outputs[1][1])
        lines.append("| %s | %s | %d | %+.2f | %+.2f to %+.2f |" % (
            label, split, seed, gap, low, high))
  return lines


def _at_stop(result, key):
  values = result.get("series", {}).get(key, {})
  stop = result.get("stop_step")
  return values.get(stop) if result.get("status") == "ok" else None


def _status(result):
  if result.get("status") == "ok":
    return ("plateau" if result.get("plateau_step") else "cap") + (
        " at %d" % result["stop_step"])
  steps = result.get("series", {}).get("validation/loss", {})
  if result.get("status") in ("running", "failed", "stale"):
    return "%s (evaluated to step %d)" % (result["status"],
                                          max(steps, default=0))
  return "not run"


def markdown(results, settings, commands_file, budget=None):
  lines = ["# Learning curves to a plateau (small scale)", "",
           "Each cell trains in chunks of %d steps; after each chunk its "
           "checkpoint is evaluated on the validation split. **Plateau "
           "rule**, the same for every cell: the first evaluated step s >= "
           "%d whose validation loss is less than %g%% below the loss at the "
           "last evaluated step at or before %g s; a cell stops there or at "
           "the cap of %d steps, and its last checkpoint is evaluated on the "
           "test splits. Learning rate rsqrt(max(step, 1000)) without "
           "end-of-run decay. Measured by `scripts/small_curves.sh`, exact "
           "commands in `%s`." % (
               settings.eval_every, settings.min_steps,
               100 * settings.min_gain, 1 - settings.window,
               settings.max_steps, os.path.basename(commands_file))]
  if budget:
    lines[0] = "# Learning curves at an equal budget of %d steps (small " \
        "scale)" % budget
    lines[2] = (
        "Each cell of curves.md trains on in its folder to exactly %d "
        "steps, the plateau rule off (`scripts/curves.py --budget_steps=%d`"
        "), evaluated on the validation split every %d steps and on the "
        "test splits at step %d: the rows compared at the same number of "
        "steps, beside curves.md's plateau rule. Commands in `%s`." % (
            budget, budget, settings.eval_every, budget,
            os.path.basename(commands_file)))
  for curve in curves.CURVES:
    column = curve.column.name
    shown = SHOWN[column]
    head = ["row", "seed", "stopped"] + list(shown)
    lines += ["", "## %s" % curve.column.label, "",
              "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, label in curves.ROWS:
      for seed in curve.seeds[row]:
        result = results.get((row, column, seed), {})
        lines.append("| " + " | ".join(
            [label, str(seed), _status(result)] +
            [fmt(_at_stop(result, k)) for k in shown]) + " |")
    head = ["row", "finished seeds", "stop step (mean)"] + [
        "%s mean (min-max)" % k for k in shown[1:]]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, label in curves.ROWS:
      done = [results[(row, column, s)] for s in curve.seeds[row]
              if results.get((row, column, s), {}).get("status") == "ok"]
      cells = [label, "%d of %d" % (len(done), len(curve.seeds[row])),
               fmt(sum(r["stop_step"] for r in done) / len(done))
               if done else ""]
      for key in shown[1:]:
        values = [_at_stop(r, key) for r in done]
        values = [v for v in values if v is not None]
        cells.append("%s (%s-%s)" % (fmt(sum(values) / len(values)),
                                     fmt(min(values)), fmt(max(values)))
                     if values else "")
      lines.append("| " + " | ".join(cells) + " |")
    sample = report.sample_note(column)
    if sample:
      lines += ["", "Evaluation samples (tasks/debian_manifest.json):"
                ] + sample
    gaps = bootstrap_lines(results) if curve is curves.CURVES[
        0] else []
    if gaps:
      lines += ["", "Test BLEU gaps with a paired bootstrap 95%% interval "
                "(%d resamples of the decoded pairs; the same seed of both "
                "rows, each at its stop step):" % RESAMPLES, "",
                "| gap | split | seed | BLEU gap | 95% interval |",
                "|---|---|---|---|---|"] + gaps
  machines = sorted({r["machine"] for r in results.values()
                     if r.get("machine")})
  if machines:
    lines += ["", "Ran on: %s." % "; ".join(machines)]
  errors = ["- %s/%s/seed%d: %s" % (k + (r["error"],)) for k, r in
            sorted(results.items()) if r.get("error")]
  if errors:
    lines += ["", "Failed or stale cells:"] + errors
  return "\n".join(lines) + "\n"


def plot(curve, results, path):
  """One panel per validation curve of `curve`'s column: a line per cell
  (colour: row, style: seed), a dot at each plateau step."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  panels = PANELS[curve.column.name]
  fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4),
                           squeeze=False)
  for axis, (key, title) in zip(axes[0], panels):
    for colour, (row, label) in enumerate(curves.ROWS):
      for seed in curve.seeds[row]:
        result = results.get((row, curve.column.name, seed), {})
        values = result.get("series", {}).get(key, {})
        if not values:
          continue
        steps = sorted(values)
        axis.plot(steps, [values[s] for s in steps], color="C%d" % colour,
                  linestyle=("-", "--", ":")[seed % 3], linewidth=1,
                  label="%s, seed %d" % (label, seed))
        if result.get("plateau_step") in values:
          axis.plot([result["plateau_step"]],
                    [values[result["plateau_step"]]], "o",
                    color="C%d" % colour, markersize=4)
    axis.set_xlabel("step", fontsize=8)
    axis.set_title(title, fontsize=9)
    axis.tick_params(labelsize=7)
  handles, labels = axes[0][0].get_legend_handles_labels()
  if handles:
    fig.legend(handles, labels, fontsize=6, loc="lower center",
               ncol=min(len(labels), 5))
  fig.suptitle("%s: learning curves (dot: plateau)" % curve.column.label,
               fontsize=9)
  fig.tight_layout(rect=(0, 0.12, 1, 1))
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_report(results, settings, results_dir, commands, budget=None):
  """results: {(row, column, seed): run_curve_cell's result}; writes
  curves.{md,csv,commands.sh} and curves_COLUMN.png (curves_budgetN.* for
  an equal-budget run); returns the base."""
  os.makedirs(results_dir, exist_ok=True)
  base = os.path.join(results_dir, "curves_budget%d" % budget if budget
                      else "curves")
  with open(base + ".commands.sh", "w") as f:
    f.write("# Commands of scripts/small_curves.sh, in order (a chunk's "
            "train call, then its evaluations).\n")
    f.write("".join(c + "\n" for c in commands))
  with open(base + ".md", "w") as f:
    f.write(markdown(results, settings, base + ".commands.sh", budget))
  with open(base + ".csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["row", "column", "seed", "status", "stop_step",
                     "plateau_step", "metric", "step", "value"])
    for (row, column, seed), result in sorted(results.items()):
      for key, values in sorted(result.get("series", {}).items()):
        for step, value in sorted(values.items()):
          writer.writerow([row, column, seed, result.get("status"),
                           result.get("stop_step"),
                           result.get("plateau_step"), key, step, value])
  for curve in curves.CURVES:
    plot(curve, results, "%s_%s.png" % (base, curve.column.name))
  return base
