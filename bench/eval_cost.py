"""What a small-table cell's evaluation costs, before and after a change.

Two cells of `scripts/reproduce_synth_mt_lm.sh --scale=small`, the
Transformer row: the LM column's perplexity eval of the test split and the
En-De column's decode eval (1000 test pairs, greedy, batch 64). Each model
is trained TRAIN_STEPS steps once (prepared under the log's folder): enough
that its logits are not near-ties everywhere, so two decodes that sum
attention in another order pick the same tokens (after 10 steps, 4% of the
rows flipped between degenerate outputs). Each variant then runs the cell's
own eval command on its own copy of the checkpoint: today's code and, with
--before REV, REV's mtf_synth/ and gin/ (harness.revision_tree) reading
today's tasks/ and data/, interleaved. Reports wall and CPU seconds of the
whole command and the metric the table reads (perplexity, BLEU): equal
metrics show the cheaper evaluation measures the same thing.

Needs data/debian (python scripts/build_corpus.py).
  python bench/eval_cost.py --before 4eb1c30 [--repeats 3]
"""

import argparse
import glob
import math
import os
import shutil
import subprocess
import sys

import harness  # bench/harness.py

QUIET = (("TF_CPP_MIN_LOG_LEVEL", "3"),)
TRAIN_STEPS = 200
ROW = "tables/synth_mt_lm/transformer.gin"
CELLS = {
    "LM perplexity": (
        ("--gin_file=models/lm_base.gin", "--gin_file=tables/small/debian_lm.gin",
         "--gin_file=" + ROW),
        ("--gin_file=perplexity_eval.gin",)),
    "En-De BLEU": (
        ("--gin_file=models/transformer_base.gin",
         "--gin_file=tables/small/debian_l10n_ende.gin", "--gin_file=" + ROW),
        ("--gin_file=eval.gin",)),
}
EVAL = ("--gin_file=tables/small/eval.gin", "--gin_param=eval_checkpoint_step=-1",
        "--gin_param=utils.run.dataset_split='test'")


def before_tree(revision):
  """REV's mtf_synth/ and gin/ beside today's tasks/ and data/ (symlinks),
  so both variants evaluate the same examples: (label, folder)."""
  label, folder = harness.revision_tree(revision)
  mixed = folder + "+tasks"
  if not os.path.isdir(mixed):
    os.makedirs(mixed + ".partial", exist_ok=True)
    for name, target in (("mtf_synth", folder), ("gin", folder),
                         ("tasks", harness.REPO), ("data", harness.REPO)):
      link = os.path.join(mixed + ".partial", name)
      if not os.path.lexists(link):
        os.symlink(os.path.join(target, name), link)
    os.rename(mixed + ".partial", mixed)
  return label, mixed


def mtf_synth(model_dir, *flags, pythonpath=None):
  env = dict(os.environ, **dict(QUIET))
  if pythonpath:
    env["PYTHONPATH"] = pythonpath
  # -P: mtf_synth from PYTHONPATH (a --before tree), not the working dir.
  subprocess.run([sys.executable, "-P", "-m", "mtf_synth",
                  "--model_dir=" + model_dir, *flags], check=True, env=env)


def prepare(out_dir, cell):
  model_dir = os.path.join(out_dir, "eval_cost_model", cell.replace(" ", "_"))
  if not glob.glob(os.path.join(model_dir, "model.ckpt-%d.index"
                                % TRAIN_STEPS)):
    mtf_synth(model_dir, *CELLS[cell][0],
              "--gin_param=utils.run.train_steps=%d" % TRAIN_STEPS)
  return model_dir


def metric(model_dir):
  """The number the table reads: perplexity or BLEU, from the events."""
  from mtf_synth.runtime import summaries  # pylint: disable=g-import-not-at-top
  for (folder, tag), series in summaries.read_scalars(
      model_dir, recursive=True).items():
    if folder.startswith("eval") and tag == "neg_log_perplexity":
      return math.exp(-series[max(series)])
    if folder == "test_eval" and tag.endswith("/bleu"):
      return series[max(series)]
  return None


def child(prepared, model_dir, cell):
  """Runs the cell's eval on a fresh copy of the prepared checkpoint."""
  shutil.rmtree(model_dir, ignore_errors=True)
  shutil.copytree(prepared, model_dir,
                  ignore=shutil.ignore_patterns("*eval*", "events.*"))
  mtf_synth(model_dir, *CELLS[cell][1], *CELLS[cell][0], *EVAL,
            pythonpath=os.environ.get("EVAL_COST_TREE"))
  harness.report(metric=metric(model_dir))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--before", metavar="REV", action="append", default=[])
  parser.add_argument("--cells", nargs="+", choices=sorted(CELLS),
                      default=sorted(CELLS))
  parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
  harness.add_common_flags(parser, "eval_cost", repeats=3)
  args = parser.parse_args()
  if args.child:
    child(*args.child)
    return
  out_dir = os.path.dirname(os.path.abspath(args.log))
  trees = [("", None)] + [before_tree(r) for r in args.before]
  runs = []
  for cell in args.cells:
    prepared = prepare(out_dir, cell)
    for label, folder in trees:
      model_dir = os.path.join(out_dir, "eval_cost_runs", "%s%s" % (
          cell.replace(" ", "_"), label.replace("@", "_")))
      env = QUIET + ((("EVAL_COST_TREE", folder),) if folder else ())
      runs.append(harness.Run(
          (cell + " " + label).strip(),
          (sys.executable, os.path.abspath(__file__), "--child", prepared,
           model_dir, cell), env=env))
  records = harness.measure(runs, args.repeats, args.log)
  lines = ["### Evaluation cost of a small-table cell", "",
           harness.provenance(records), "",
           "The Transformer row's cells of `scripts/reproduce_synth_mt_lm.sh "
           "--scale=small`, trained %d steps; each cell's own eval command "
           "(test split, gin/tables/small/eval.gin), whole process." %
           TRAIN_STEPS, ""]
  figures = [harness.Figure("wall s", harness.field("wall_s"), "%.1f",
                            ratio=True),
             harness.Figure("CPU s", harness.field("cpu_s"), "%.1f",
                            ratio=True),
             harness.Figure("metric", harness.field("metric"), "%.4f")]
  for cell in args.cells:
    names = [(cell + " " + label).strip() for label, _ in trees]
    lines += harness.table(records, names, figures, names[1:]) + [""]
  harness.write_markdown("\n".join(lines), args.markdown)


if __name__ == "__main__":
  main()
