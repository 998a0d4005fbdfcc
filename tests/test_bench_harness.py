"""bench/harness.py: interleaving, resume, per-run measurements, statistics."""

import os
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir,
                                "bench"))
import harness  # noqa: E402  pylint: disable=g-import-not-at-top


def child(code):
  """A fake variant: Python code run with bench/ importable."""
  return (sys.executable, "-c",
          "import sys; sys.path.insert(0, %r); import harness; %s"
          % (harness.BENCH_DIR, code))


def test_runs_interleave_and_resume_from_the_log(tmp_path):
  order, log = tmp_path / "order", str(tmp_path / "log.jsonl")
  runs = [harness.Run(name, child(
      "open(%r, 'a').write('%s '); harness.report(value=%d)"
      % (str(order), name, value))) for name, value in (("a", 1), ("b", 2))]
  harness.measure(runs, 2, log, echo=False)
  assert order.read_text() == "a b a b "
  records = harness.measure(runs, 3, log, echo=False)  # one more repeat
  assert order.read_text() == "a b a b a b "
  assert len(records) == 6
  assert sorted(r["value"] for r in records) == [1, 1, 1, 2, 2, 2]


def test_a_changed_command_is_run_again(tmp_path):
  log = str(tmp_path / "log.jsonl")
  harness.measure([harness.Run("a", child("harness.report(v=1)"))], 1, log,
                  echo=False)
  records = harness.measure([harness.Run("a", child("harness.report(v=2)"))],
                            1, log, echo=False)
  assert [r["v"] for r in records] == [2]


def test_a_failed_run_is_logged_and_retried(tmp_path):
  log, flag = str(tmp_path / "log.jsonl"), tmp_path / "fail_once"
  flag.write_text("")
  code = ("import os; f = %r\n"
          "if os.path.exists(f): os.remove(f); sys.exit('boom')\n"
          "harness.report(v=3)" % str(flag))
  runs = [harness.Run("a", child(code))]
  assert harness.measure(runs, 1, log, echo=False) == []
  failed, = harness.read_log(log)
  assert failed["rc"] == 1 and failed["error"] == "boom"
  records = harness.measure(runs, 1, log, echo=False)
  assert [r["v"] for r in records] == [3]


def test_peak_rss_cpu_and_launch_time_are_the_childs(tmp_path):
  # From a small process: Linux counts a child's memory before exec, i.e.
  # its parent's RSS (this test process holds TF), into ru_maxrss.
  log, markdown = str(tmp_path / "log.jsonl"), str(tmp_path / "out.md")
  small = "harness.report(since=harness.seconds_since_launch())"
  big = "b = bytearray(300 << 20); b[::4096] = b'x' * len(b[::4096])"
  spin = ("import time; t = time.process_time()\n"
          "while time.process_time() - t < 0.3: pass")
  subprocess.run([sys.executable, os.path.join(harness.BENCH_DIR,
                                               "harness.py"),
                  "--repeats=1", "--log", log, "--markdown", markdown,
                  "small=" + shlex.join(child(small)),
                  "big=" + shlex.join(child(big)),
                  "spin=" + shlex.join(child(spin))],
                 check=True, capture_output=True)
  small, big, spin = harness.read_log(log)
  assert small["peak_rss_mib"] < 100 < 300 < big["peak_rss_mib"] < 400
  assert small["cpu_s"] < 0.3 <= spin["cpu_s"] < 0.3 + small["cpu_s"] + 0.2
  assert 0 < small["since"] < small["wall_s"]
  assert small["load_before"] >= 0 and small["load_after"] >= 0
  assert "| big | " in open(markdown).read()


def record(variant, phase, repeat, **figures):
  return dict(figures, key=[variant, phase, repeat, []], rc=0)


def test_step_difference_and_median_of_pair_ratios():
  # Per step = (long - short) / (10 - 2); ours/base per repeat: 0.5, 1, 2
  # (the ratio of the medians would be 1.5 / 1.5 = 1 as well, but the
  # per-pair ratios' spread is what shows the noise).
  walls = {"base": [(2, 10), (2, 10), (2, 26)], "ours": [(1, 5), (3, 11),
                                                          (1, 17)]}
  records = [record(v, phase, r, wall_s=w[i])
             for v, pairs in walls.items() for r, w in enumerate(pairs)
             for i, phase in enumerate(("short", "long"))]
  per_step = harness.Figure("s/step", harness.step_difference(
      "wall_s", "short", "long", 2, 10), ratio=True)
  assert harness.per_repeat(records, "base", per_step) == {0: 1, 1: 1, 2: 3}
  assert harness.pair_ratios(records, "ours", "base", per_step) == [
      0.5, 1.0, 2 / 3]
  rows = harness.table(records, ["base", "ours"], [per_step], ["base"])
  assert rows[0] == "| variant | s/step | s/step vs base |"
  assert rows[2] == "| base | 1.000 (1.000-3.000) | 1.00x |"
  assert rows[3] == "| ours | 1.000 (0.500-2.000) | 0.67x (0.50x-1.00x) |"


def test_a_repeat_missing_a_phase_or_figure_is_left_out():
  records = [record("a", "short", 0, wall_s=1), record("a", "long", 0,
                                                      wall_s=3),
             record("a", "short", 1, wall_s=1),
             record("a", "short", 2, wall_s=1),
             record("a", "long", 2, wall_s=2, first_step_s=None)]
  per_step = harness.Figure("s", harness.step_difference(
      "wall_s", "short", "long", 0, 1))
  assert harness.per_repeat(records, "a", per_step) == {0: 2, 2: 1}
  first = harness.Figure("first", harness.field("first_step_s", "long"))
  assert harness.per_repeat(records, "a", first) == {}
  assert harness.median_range([]) == "-"


def test_step_stats_summary_adds_op_types_and_keeps_the_busiest_nodes():
  import step_stats  # pylint: disable=g-import-not-at-top  (imports TF)
  from tensorflow.core.framework import step_stats_pb2  # pylint: disable=g-import-not-at-top

  def traced_run(offset):
    stats = step_stats_pb2.StepStats()
    device = stats.dev_stats.add(device="/cpu:0")
    for name, op, start, micros in (("a/MatMul", "MatMul", 0, 300),
                                    ("b/MatMul", "MatMul", 300, 100),
                                    ("c/Add", "AddV2", 400, 200)):
      node = device.node_stats.add(
          node_name=name, timeline_label="%s = %s(x, y)" % (name, op),
          all_start_micros=offset + start, all_end_rel_micros=micros)
      node.output.add().tensor_description.shape.dim.add(size=4)
    return stats

  summary = step_stats.summary([traced_run(0), traced_run(10 ** 6)])
  assert summary["runs"] == 2
  assert abs(summary["wall_s"] - 600e-6) < 1e-12  # per run
  assert abs(summary["op_s"] - 600e-6) < 1e-12
  assert summary["by_type"]["MatMul"][1] == 2  # executions per run
  assert abs(summary["by_type"]["MatMul"][0] - 400e-6) < 1e-12
  assert summary["top_nodes"][0][0] == "a/MatMul"
  assert summary["top_nodes"][0][2] == [[4], "MatMul"]
