"""Learning curves of the small-scale rows to a plateau.

Rows Transformer, R, R+V and D (gin/tables/synth_mt_lm/ROW.gin) on the
debian corpus's En-De translation (validation BLEU and placeholder
accuracy at every checkpoint, test and heldout at the end) and LM
(validation perplexity, test at the end); seeds 0-2 for the Transformer and
R on En-De, 0-1 otherwise. Each cell trains in chunks until its validation
loss reaches the plateau rule or the cap (mtf_synth/tables/curves.py,
settings in gin/tables/small/curves.gin), in
MODEL_DIR_ROOT/small/ROW/COLUMN/seedN, and the report goes to
RESULTS_DIR/curves.{md,csv,commands.sh} and curves_COLUMN.png, with each
finished cell's record in RESULTS_DIR/curves/ (commit it: a cell recorded
there is skipped on any machine).

  python scripts/curves.py [--model_dir_root=DIR] [--results_dir=DIR]
      [--rows=a,b] [--columns=c] [--seeds=0,1] [--dry_run] [--report_only]
      [--budget_steps=N] [any mtf_synth flag ...]

Re-running continues: finished cells are skipped, an interrupted one goes
on from its last evaluated chunk, a cell of other commands or gin files is
reported stale. Unknown flags go to every mtf_synth call; --gin_param
flags also bind the curve settings, e.g. a smoke run:
  --gin_param=CURVE_EVAL_EVERY=5 --gin_param=curve_settings.max_steps=10
scripts/small_curves.sh runs this in the background.

--budget_steps=N: the equal-budget comparison beside the plateau one. Each
cell trains on in its folder to exactly N steps, the plateau rule off; the
records go to RESULTS_DIR/curves_budgetN/ and the report to
RESULTS_DIR/curves_budgetN.*; the plateau cells' results stay as they were.
"""

import argparse
import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's start-up noise
from mtf_synth.tables import REPO  # noqa: E402  pylint: disable=g-import-not-at-top
from mtf_synth.tables import curve_report  # noqa: E402
from mtf_synth.tables import curves  # noqa: E402


def parse_args(argv):
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--model_dir_root", default=os.path.join(
      REPO, "runs", "curves"))
  parser.add_argument("--results_dir", default=os.path.join(
      REPO, "results", "small"))
  parser.add_argument("--rows", default=None, help="comma-separated row ids")
  parser.add_argument("--columns", default=None, help="comma-separated")
  parser.add_argument("--seeds", default=None, help="comma-separated")
  parser.add_argument("--dry_run", action="store_true",
                      help="print each cell's first chunk's commands")
  parser.add_argument("--report_only", action="store_true",
                      help="write the report from the cells' folders")
  parser.add_argument("--budget_steps", type=int, default=None,
                      help="train every cell to exactly this step")
  args, extra = parser.parse_known_args(argv)
  known = {row for row, _ in curves.ROWS}
  for name, values in (("rows", args.rows), ("columns", args.columns)):
    unknown = set((values or "").split(",")) - {""} - (
        known if name == "rows" else {c.column.name for c in curves.CURVES})
    if unknown:
      parser.error("unknown %s %s: choose from %s" % (
          name, ",".join(sorted(unknown)), ",".join(sorted(
              known if name == "rows" else
              {c.column.name for c in curves.CURVES}))))
  return args, extra


def main(argv=None):
  args, extra = parse_args(sys.argv[1:] if argv is None else argv)
  settings = curves.load_settings(
      a.split("=", 1)[1] for a in extra if a.startswith("--gin_param="))
  plans = curves.all_plans(
      os.path.abspath(args.model_dir_root), extra,
      rows=args.rows and args.rows.split(","),
      columns=args.columns and args.columns.split(","),
      seeds=args.seeds and [int(s) for s in args.seeds.split(",")])
  first_chunk = {p.name: [p.train_to(settings.eval_every)] + [
      p.evaluate_at(e, settings.eval_every) for e in p.curve.every_chunk]
                 for p in plans}
  if args.dry_run:
    for steps in first_chunk.values():
      for step in steps:
        print(shlex.join(step.command()))
    return 0
  print("%d curve cells in %s" % (len(plans), args.model_dir_root),
        flush=True)
  name = "curves_budget%d" % args.budget_steps if args.budget_steps else (
      "curves")
  records_dir = os.path.join(args.results_dir, name)
  results = {(p.row, p.curve.column.name, p.seed):
             curves.known_result(p, records_dir, args.budget_steps)
             for p in plans}

  def report():
    commands = [c for p in plans for c in results[
        (p.row, p.curve.column.name, p.seed)].get("commands") or
                map(shlex.join, (s.command() for s in first_chunk[p.name]))]
    return curve_report.write_report(results, settings, args.results_dir,
                                     commands, args.budget_steps)

  for cell in ([] if args.report_only else plans):
    results[(cell.row, cell.curve.column.name, cell.seed)] = (
        curves.run_curve_cell(cell, settings, records_dir,
                              log=lambda s: print(s, flush=True),
                              budget=args.budget_steps))
    report()  # after every cell: the finished ones are in the report
  base = report()
  print("wrote %s.{md,csv,commands.sh} and %s_COLUMN.png" % (base, base))
  return 0


if __name__ == "__main__":
  sys.exit(main())
