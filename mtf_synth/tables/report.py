"""A table's report: Markdown, CSV (long format), a plot and the commands,
our numbers beside the papers' published ones."""

import csv
import json
import os

from mtf_synth.tables import REPO
from mtf_synth.tables.specs import LOWER_IS_BETTER

DEBIAN_MANIFEST = os.path.join(REPO, "tasks", "debian_manifest.json")


def fmt(value):
  if value is None:
    return ""
  return "%.4g" % value if isinstance(value, float) else str(value)


def report_rows(table, scale, results):
  """Long-format records: one per (row, column, metric), ours and paper's."""
  records = []
  for row, label in table.rows:
    for column in table.columns(scale):
      result = results.get((row, column.name)) or {}
      for metric in column.metrics:
        records.append({
            "row": row, "label": label, "source": "ours (%s)" % scale,
            "column": column.name, "metric": metric,
            "value": (result.get("metrics") or {}).get(metric),
            "status": result.get("status", "not run")})
    for column in table.paper:
      for metric in column.metrics:
        value = table.published.get(column.name, {}).get(metric, {}).get(row)
        records.append({"row": row, "label": label, "source": "paper",
                        "column": column.name, "metric": metric,
                        "value": value, "status": "published"})
  return records


def _headers(table, scale):
  ours = [(c, m) for c in table.columns(scale) for m in c.metrics]
  paper = [(c, m) for c in table.paper for m in c.metrics]
  return ours, paper


def sample_note(column, splits=None):
  """Lines giving the per-catalog composition of a debian translation
  column's decoded samples (`splits`, default all), from the committed data
  manifest; [] for other columns."""
  if not column.startswith("debian_l10n_"):
    return []
  with open(DEBIAN_MANIFEST) as f:
    dataset = json.load(f)["datasets"][column[len("debian_"):]]
  lines = []
  for split, info in dataset.items():
    if info.get("sample_catalogs") and split in (splits or dataset):
      lines.append("- %s (%d pairs; decoded: the first %d, by catalog): %s" % (
          split, info["examples"], sum(info["sample_catalogs"].values()),
          ", ".join("%s %d" % kv for kv in sorted(
              info["sample_catalogs"].items(), key=lambda kv: -kv[1]))))
  return lines


def markdown(table, scale, results, commands_file):
  ours, paper = _headers(table, scale)
  head = (["row"] + ["%s %s" % (c.label, m) for c, m in ours] + ["status"] +
          ["paper: %s %s" % (c.label, m) for c, m in paper])
  lines = ["# %s (%s scale)" % (table.title, scale), "",
           "| " + " | ".join(head) + " |",
           "|" + "---|" * len(head)]
  for row, label in table.rows:
    statuses, cells = [], [label]
    for column, metric in ours:
      result = results.get((row, column.name)) or {}
      statuses.append(result.get("status", "not run"))
      cells.append(fmt((result.get("metrics") or {}).get(metric))
                   if result.get("status") == "ok" else "")
    failed = sorted({s for s in statuses if s != "ok"})
    cells.append("ok" if not failed else "/".join(failed))
    for column, metric in paper:
      cells.append(fmt(table.published.get(column.name, {}).get(
          metric, {}).get(row)))
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "Paper numbers are the published ones (blank: not "
            "published or not listed); ours are measured by "
            "`scripts/reproduce_%s.sh --scale=%s`, exact commands in `%s`. "
            "Lower is better for %s." % (
                table.name, scale, os.path.basename(commands_file),
                ", ".join(LOWER_IS_BETTER))]
  samples = [line for column in table.columns(scale)
             for line in sample_note(column.name, [column.split])]
  if samples:
    lines += ["", "Decoded samples of the debian corpus "
              "(tasks/debian_manifest.json):"] + samples
  carried = ["%s/%s" % k for k, r in sorted(results.items())
             if r.get("carried_over")]
  if carried:
    lines += ["", "Not re-run in the last run of the script (values kept "
              "from the report it rewrote): %s." % ", ".join(carried)]
  errors = [(k, r["error"]) for k, r in sorted(results.items())
            if r.get("status") != "ok" and r.get("error")]
  if errors:
    lines += ["", "Failed or stale cells:"] + ["- %s/%s: %s" % (k[0], k[1], e)
                                      for k, e in errors]
  return "\n".join(lines) + "\n"


def plot(table, scale, results, path):
  """One panel per metric: ours per column, then the paper's, by row."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  ours, paper = _headers(table, scale)
  panels = [("ours: %s %s" % (c.label, m), [
      ((results.get((r, c.name)) or {}).get("metrics") or {}).get(m)
      for r, _ in table.rows]) for c, m in ours]
  panels += [("paper: %s %s" % (c.label, m), [
      table.published.get(c.name, {}).get(m, {}).get(r) for r, _ in
      table.rows]) for c, m in paper if table.published.get(c.name, {}).get(m)]
  fig, axes = plt.subplots(1, len(panels), squeeze=False,
                           figsize=(3.2 * len(panels) + 1, 0.35 *
                                    len(table.rows) + 1.5))
  labels = [label for _, label in table.rows]
  for axis, (title, values) in zip(axes[0], panels):
    axis.barh(range(len(labels)), [v if v is not None else 0 for v in values],
              color=["C0" if title.startswith("ours") else "C1"] * len(values))
    for i, value in enumerate(values):
      axis.text(0, i, " " + (fmt(value) if value is not None else "n/a"),
                va="center", fontsize=7)
    axis.set_yticks(range(len(labels)))
    axis.set_yticklabels(labels if axis is axes[0][0] else [], fontsize=7)
    axis.invert_yaxis()
    axis.set_title(title, fontsize=8)
  fig.suptitle("%s (%s)" % (table.title, scale), fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_report(table, scale, results, results_dir, commands):
  os.makedirs(results_dir, exist_ok=True)
  base = os.path.join(results_dir, table.name)
  with open(base + ".commands.sh", "w") as f:
    f.write("# Commands of scripts/reproduce_%s.sh --scale=%s, in order.\n"
            % (table.name, scale))
    f.write("".join(c + "\n" for c in commands))
  with open(base + ".md", "w") as f:
    f.write(markdown(table, scale, results, base + ".commands.sh"))
  records = report_rows(table, scale, results)
  with open(base + ".csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
  plot(table, scale, results, base + ".png")
  return base


def previous_report(table, scale, results_dir):
  """Finished cells of the report in results_dir (TABLE.csv and
  TABLE.commands.sh), keyed like `results`; marked `carried_over`.

  They fill the cells that have no run folder here, so re-running a few rows
  in a fresh clone updates the committed table instead of emptying it.
  """
  base = os.path.join(results_dir, table.name)
  try:
    with open(base + ".csv", newline="") as f:
      records = list(csv.DictReader(f))
    with open(base + ".commands.sh") as f:
      commands = [line.rstrip("\n") for line in f
                  if not line.startswith("#")]
  except OSError:
    return {}
  previous = {}
  for record in records:
    if record["source"] == "ours (%s)" % scale and record["status"] == "ok":
      cell = previous.setdefault((record["row"], record["column"]), {
          "status": "ok", "metrics": {}, "carried_over": True})
      cell["metrics"][record["metric"]] = (float(record["value"])
                                           if record["value"] else None)
  for (row, column), cell in previous.items():
    model_dir = "/%s/%s/%s/%s" % (scale, table.name, row, column)
    cell["commands"] = [c for c in commands
                        if (model_dir + " ") in (c + " ")]
  return previous
