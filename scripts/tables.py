"""Reproduces the papers' tables with the `mtf_synth` command line.

One table = rows (a model, one gin file each under gin/tables/TABLE/) times
columns (a task + base model + schedule, gin/tables/TABLE/tasks/COLUMN.gin at
paper scale, gin/tables/SCALE/TASK.gin at mini scale (generated tasks) and
small scale (the debian corpus, real text)). Each (row, column) cell
is one training run in MODEL_DIR_ROOT/SCALE/TABLE/ROW/COLUMN, followed by the
evaluation the column needs (decode-and-score, perplexity, or none: training
loss and steps/s from the TensorBoard events). The table is written as
Markdown, CSV and a matplotlib plot beside the papers' published numbers.

  python scripts/tables.py TABLE [--scale=mini|small|paper]
      [--model_dir_root=DIR] [--results_dir=DIR] [--mesh=cpu_2x2|gpu|tpu_2x2]
      [--rows=a,b] [--columns=c] [--dry_run] [--check_gin] [any mtf_synth flag ...]

Unknown flags (--tpu=..., --gin_param=..., ...) go to every mtf_synth call.
A cell whose result.json says "ok" is skipped on re-runs; a failed cell is
reported as failed and the others go on. A finished cell whose commands or gin
files (includes followed) have changed since is reported as stale, not
silently reused: its folder is kept, and deleting it re-runs the cell.
scripts/reproduce_TABLE.sh calls this file; the shell scripts hold no logic.
The tables (rows, columns, published numbers) and the library this command
runs are in mtf_synth/tables/.
"""

import argparse
import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's start-up noise
from mtf_synth import cli  # noqa: E402  pylint: disable=g-import-not-at-top
from mtf_synth.tables import REPO  # noqa: E402
from mtf_synth.tables import cells  # noqa: E402
from mtf_synth.tables import metrics  # noqa: E402
from mtf_synth.tables import planning  # noqa: E402
from mtf_synth.tables import report  # noqa: E402
from mtf_synth.tables import specs  # noqa: E402


def parse_args(argv):
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("table", choices=sorted(specs.TABLES))
  parser.add_argument("--scale", choices=specs.SCALES, default="mini")
  parser.add_argument("--model_dir_root", default=None,
                      help="default: runs/tables")
  parser.add_argument("--results_dir", default=None,
                      help="default: results/SCALE")
  parser.add_argument("--mesh", default=None,
                      choices=["none", "cpu_2x2", "gpu", "tpu_2x2"],
                      help="gin/mesh/MESH.gin; default: tpu_2x2 with --tpu, "
                      "gpu at paper scale, none (model:1,batch:1) at mini")
  parser.add_argument("--rows", default=None, help="comma-separated row ids")
  parser.add_argument("--columns", default=None, help="comma-separated")
  parser.add_argument("--dry_run", action="store_true",
                      help="print the exact commands, run nothing")
  parser.add_argument("--check_gin", action="store_true",
                      help="parse every command's gin (no training)")
  parser.add_argument("--report_only", action="store_true",
                      help="write the table from the finished cells, run "
                      "nothing")
  args, extra = parser.parse_known_args(argv)
  if args.mesh is None:
    tpu = any(a.startswith("--tpu=") or a == "--tpu" for a in extra)
    args.mesh = ("tpu_2x2" if tpu else
                 "gpu" if args.scale == "paper" else "none")
  args.mesh = None if args.mesh == "none" else args.mesh
  args.model_dir_root = os.path.abspath(args.model_dir_root or
                                        os.path.join(REPO, "runs", "tables"))
  args.results_dir = os.path.abspath(args.results_dir or os.path.join(
      REPO, "results", args.scale))
  return args, extra


def selected(table, args):
  rows = [r for r, _ in table.rows]
  columns = list(table.columns(args.scale))
  if args.rows:
    unknown = set(args.rows.split(",")) - set(rows)
    if unknown:
      raise SystemExit("unknown rows %s; known: %s" % (sorted(unknown), rows))
    rows = [r for r in rows if r in args.rows.split(",")]
  if args.columns:
    columns = [c for c in columns if c.name in args.columns.split(",")]
  return rows, columns


def plan(table, args, extra):
  """[(row, column, steps)] of the selected cells."""
  rows, columns = selected(table, args)
  return [(row, column, planning.cell_steps(table, row, column, args.scale,
                                            args.model_dir_root, args.mesh,
                                            extra))
          for row in rows for column in columns]


def main(argv=None):
  args, extra = parse_args(sys.argv[1:] if argv is None else argv)
  table = specs.TABLES[args.table]
  selected_cells = plan(table, args, extra)
  planned = {(row, column.name): [s.command() for s in steps]
             for row, column, steps in selected_cells}
  commands = [c for cell_commands in planned.values() for c in cell_commands]
  if args.dry_run or args.check_gin:
    for command in commands:
      print(shlex.join(command))
    if args.check_gin:
      for command in commands:
        cli.check_command(command[1:])
      print("gin of %d commands parsed" % len(commands), file=sys.stderr)
    return 0
  print("%s, %s scale: %d cells in %s" % (
      table.title, args.scale, len(selected_cells), args.model_dir_root),
        flush=True)
  results = {}
  for row, column, steps in ([] if args.report_only else selected_cells):
    results[(row, column.name)] = cells.run_cell(
        table, row, column, steps, log=lambda s: print(s, flush=True))
  # Cells not selected this time but finished earlier still go in the table:
  # from their run folder, else from the report being rewritten.
  previous = report.previous_report(table, args.scale, args.results_dir)
  for row, _ in table.rows:
    for column in table.columns(args.scale):
      cell = (row, column.name)
      if cell in results:
        continue
      model_dir = os.path.join(args.model_dir_root, args.scale, table.name,
                               row, column.name)
      done = cells.load_result(model_dir)
      if done and done.get("status") == "ok":
        done["metrics"] = metrics.collect_metrics(column, model_dir)
      if done or cell in previous:
        results[cell] = done or previous[cell]
  # Each cell's commands as it ran (result.json), else as planned now.
  ran = [line for row, _ in table.rows for column in table.columns(args.scale)
         for line in ((results.get((row, column.name)) or {}).get("commands")
                      or map(shlex.join, planned.get((row, column.name), [])))]
  base = report.write_report(table, args.scale, results, args.results_dir,
                             ran)
  print("wrote %s.{md,csv,png,commands.sh}" % base)
  failed = [k for k, r in results.items() if r.get("status") != "ok"]
  print("%d cells, %d failed" % (len(results), len(failed)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
