"""scripts/tables.py: every table's commands parse (gin validated, nothing
trained), dry runs print them, reports mark failed cells, re-runs skip
finished cells."""

import csv
import json
import os
import shlex
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir,
                                "scripts"))
import tables  # noqa: E402  pylint: disable=g-import-not-at-top

from mtf_synth import cli  # noqa: E402  pylint: disable=g-import-not-at-top
from mtf_synth.tables import REPO  # noqa: E402  pylint: disable=g-import-not-at-top
from mtf_synth.tables import cells  # noqa: E402  pylint: disable=g-import-not-at-top
from mtf_synth.tables import curves  # noqa: E402  pylint: disable=g-import-not-at-top
from mtf_synth.tables import metrics  # noqa: E402  pylint: disable=g-import-not-at-top
from mtf_synth.tables import planning  # noqa: E402  pylint: disable=g-import-not-at-top
from mtf_synth.tables import report  # noqa: E402  pylint: disable=g-import-not-at-top
from mtf_synth.tables import specs  # noqa: E402  pylint: disable=g-import-not-at-top


def commands(table, scale, *extra):
  args, rest = tables.parse_args([table, "--scale=%s" % scale,
                                  "--model_dir_root=/tmp/r"] + list(extra))
  planned = tables.plan(specs.TABLES[table], args, rest)
  return [s.command() for _, _, steps in planned for s in steps]


@pytest.fixture(scope="module")
def stand_in_vocabularies(tmp_path_factory):
  """The command line loads each task's SentencePiece model before running;
  paper-scale data and the debian corpus are not here, so point both at a
  tiny model trained now."""
  from tasks import sentencepiece_training  # pylint: disable=g-import-not-at-top
  corpus = tmp_path_factory.mktemp("debian")
  model = sentencepiece_training.train(
      ["translate English to German: the file %d was not found" % i
       for i in range(200)], str(corpus / "spm" / "debian"), vocab_size=60)
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("MTF_SYNTH_SPM_MODEL", model)
    patch.setenv("MTF_SYNTH_DEBIAN_DIR", str(corpus))
    yield


@pytest.mark.parametrize("table", sorted(specs.TABLES))
@pytest.mark.parametrize("scale", specs.SCALES)
def test_every_command_parses(table, scale, stand_in_vocabularies):
  """The gin of each command passes mtf_synth's own preflight."""
  for command in commands(table, scale):
    cli.check_command(command[1:])


def test_curve_commands_parse(stand_in_vocabularies, capsys):
  """scripts/curves.py's first chunk of every curve cell: train, and the
  evaluations at its checkpoint."""
  import curves as curves_script  # pylint: disable=g-import-not-at-top
  assert curves_script.main(["--dry_run", "--model_dir_root=/tmp/r"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 3 * 10 + 2 * 8  # En-De: 10 cells, LM: 8
  for line in lines:
    cli.check_command(shlex.split(line)[1:])


def test_tpu_and_cpu_mesh_commands_parse(stand_in_vocabularies):
  for command in commands("synth_mt_lm", "paper", "--rows=random_vanilla",
                          "--mesh=tpu_2x2"):
    cli.check_command(command[1:])
  for command in commands("synth_mt_lm", "mini", "--rows=dense",
                          "--mesh=cpu_2x2"):
    cli.check_command(command[1:])


def test_every_gin_file_is_used_and_exists():
  used = set()
  for table in specs.TABLES:
    for scale in specs.SCALES:
      for command in commands(table, scale):
        used |= {a.split("=", 1)[1] for a in command
                 if a.startswith("--gin_file=tables/")}
  for path in used:
    assert os.path.exists(os.path.join(REPO, "gin", path)), path
  on_disk = {os.path.relpath(os.path.join(d, f), os.path.join(REPO, "gin"))
             for d, _, fs in os.walk(os.path.join(REPO, "gin", "tables"))
             for f in fs if f.endswith(".gin")}
  included = {"tables/mini/sizes.gin", "tables/small/sizes.gin",
              "tables/synth_glue/tasks/c4_pretrain.gin",
              curves.SETTINGS_GIN}  # the curve cells' (test_curve_commands)
  assert on_disk - used - included == set()


@pytest.mark.parametrize("table,scale", [
    (t, s) for t in sorted(specs.TABLES) for s in ("mini", "small")
    if "linformer" in dict(specs.TABLES[t].rows) and specs.TABLES[t].columns(s)])
def test_linformer_projects_below_the_length(table, scale):
  """The row file includes models/linformer.gin, parsed after the task file;
  the scale's k must still win (k < n), in the train and the eval command."""
  import gin  # pylint: disable=g-import-not-at-top
  search_path, _ = cli.gin_search_path_and_files(())
  for path in search_path:
    gin.add_config_file_search_path(path)
  for command in commands(table, scale, "--rows=linformer"):
    files = [a.split("=", 1)[1] for a in command
             if a.startswith("--gin_file=")]
    gin.clear_config()
    try:
      gin.parse_config_files_and_bindings(files, [], finalize_config=False,
                                          skip_unknown=True)
      k = gin.query_parameter("Linformer.projected_length")
      length = gin.query_parameter("utils.run.sequence_length")["inputs"]
    finally:
      gin.clear_config()
    assert k < length, (command, k, length)


def test_dry_run_prints_commands_and_passes_flags_through(capsys):
  tables.main(["synth_mt_lm", "--scale=paper", "--dry_run",
               "--model_dir_root=/tmp/root", "--tpu=my-tpu",
               "--gin_param=SynthesizerAttention.num_heads=2"])
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 9 * 3 * 2  # rows x columns x (train, eval)
  first = lines[0].split()
  assert first[:2] == ["mtf_synth", "--model_dir=/tmp/root/paper/"
                       "synth_mt_lm/transformer/wmt14_ende"]
  assert "--gin_file=mesh/tpu_2x2.gin" in first
  assert first[-2:] == ["--tpu=my-tpu",
                        "--gin_param=SynthesizerAttention.num_heads=2"]
  assert any("perplexity_eval.gin" in line and "/lm1b " in line + " "
             for line in lines)


def test_glue_fine_tuning_starts_from_pretraining(tmp_path):
  table = specs.TABLES["synth_glue"]
  steps = planning.cell_steps(table, "random_vanilla", table.paper[0], "paper",
                            str(tmp_path))
  assert [s.name for s in steps] == ["pretrain", "train", "eval"]
  pretrain_dir = steps[0].model_dir
  os.makedirs(pretrain_dir)
  with open(os.path.join(pretrain_dir, "checkpoint"), "w") as f:
    f.write('model_checkpoint_path: "model.ckpt-524288"\n')
  with open(os.path.join(pretrain_dir, "model.ckpt-524288.index"), "w"):
    pass  # tf.train.latest_checkpoint names only checkpoints on disk
  planning.resolve_pretrain_steps(steps)
  assert ("--gin_param=utils.run.init_checkpoint='%s/model.ckpt-524288'"
          % pretrain_dir) in steps[1].argv


def test_published_numbers_are_the_issues():
  t1 = specs.TABLES["synth_mt_lm"].published
  assert t1["wmt14_ende"]["bleu"]["random_vanilla"] == 28.47
  assert t1["wmt14_enfr"]["bleu"]["fixed_random"] == 38.31
  assert "factorized_random" not in t1["wmt14_ende"]["bleu"]  # blank
  assert t1["lm1b"]["perplexity"] == {"transformer": 38.21, "random": 40.60,
                                      "dense": 42.40, "random_vanilla": 40.05}
  c4 = specs.TABLES["synth_c4"].published["c4"]
  assert c4["steps_per_sec"]["dynamic_conv"] == 2.65
  assert c4["loss"]["dense_vanilla"] == 1.832
  lra = specs.TABLES["kernel_lra"].published
  assert lra["lra_pathfinder"]["accuracy"]["performer"] == 77.05
  assert lra["lra_listops"]["accuracy"]["synthesizer"] == 36.99
  assert "gmm_prf" not in lra["lra_text"]["accuracy"]


def fake_step(model_dir, ok):
  step = planning.Step("train", model_dir, [])
  step.command = lambda: [sys.executable, "-c",
                          "import sys; print('mtf_synth: error: boom'); "
                          "sys.exit(%d)" % (0 if ok else 2)]
  return step


def test_failed_cell_is_reported_and_rerun_skips_finished(tmp_path,
                                                          monkeypatch):
  table = specs.TABLES["synth_c4"]
  column = table.mini[0]
  failed = cells.run_cell(table, "dense", column,
                           [fake_step(str(tmp_path / "a"), ok=False)],
                           log=lambda _: None)
  assert failed["status"] == "failed"
  assert "boom" in failed["error"]
  # A finished cell: its result.json says ok; re-running runs nothing.
  done_dir = tmp_path / "b"
  done_dir.mkdir()
  (done_dir / "result.json").write_text(json.dumps(
      {"status": "ok", "metrics": {"loss": 1.5, "steps_per_sec": 3.0}}))
  monkeypatch.setattr(metrics, "collect_metrics",
                      lambda c, d: {"loss": 1.5, "steps_per_sec": 3.0})
  monkeypatch.setattr(cells.subprocess, "call", None)  # must not be called
  done = cells.run_cell(table, "random", column,
                         [fake_step(str(done_dir), ok=True)],
                         log=lambda _: None)
  assert done["status"] == "ok"

  results = {("dense", column.name): failed,
             ("random", column.name): done}
  base = report.write_report(table, "mini", results, str(tmp_path / "out"),
                             ["mtf_synth --x"])
  text = open(base + ".md").read()
  dense = [l for l in text.splitlines() if l.startswith("| Synthesizer (D) |")]
  assert dense == ["| Synthesizer (D) |  |  | failed | 1.965 | 3.61 |"]
  assert "- dense/demo_train: mtf_synth: error: boom" in text
  assert "| Synthesizer (R) | 1.5 | 3 | ok | 1.972 | 4.26 |" in text
  with open(base + ".csv") as f:
    records = list(csv.DictReader(f))
  assert {"ours (mini)", "paper"} == {r["source"] for r in records}
  assert os.path.getsize(base + ".png") > 1000


def test_shell_scripts_are_thin():
  for table in specs.TABLES:
    path = os.path.join(REPO, "scripts", "reproduce_%s.sh" % table)
    text = open(path).read()
    assert os.access(path, os.X_OK)
    assert "exec python scripts/tables.py %s " % table in text


def test_exact_match_by_prefix_splits_a_mixed_task(tmp_path):
  folder = tmp_path / "validation_eval"
  folder.mkdir()
  (folder / "demo_inputs").write_text("reverse: a b\nsort: b a\nsort: c a\n")
  (folder / "demo_targets").write_text("b a\na b\na c\n")
  (folder / "demo_100_predictions").write_text("x\na b\na a\n")
  (folder / "demo_200_predictions").write_text("b a\na b\na a\n")
  column = specs.MINI_DEMO
  assert metrics.exact_match_by_prefix("reverse", column, str(tmp_path)) == 100
  assert metrics.exact_match_by_prefix("sort", column, str(tmp_path)) == 50
  assert metrics.exact_match_by_prefix("copy", column, str(tmp_path)) is None


def test_finished_cell_with_changed_gin_is_stale_not_reused(tmp_path,
                                                            monkeypatch):
  gin_dir = tmp_path / "gin"
  gin_dir.mkdir()
  (gin_dir / "row.gin").write_text("include 'sizes.gin'\nd_model = 8\n")
  (gin_dir / "sizes.gin").write_text("num_layers = 2\n")
  monkeypatch.setattr(cli, "gin_search_path_and_files",
                      lambda files, tpu=False: ([str(gin_dir)], list(files)))
  model_dir = str(tmp_path / "cell")

  def steps(*params):
    return [planning.Step("train", model_dir,
                        planning.gin_args(["row.gin"], params))]

  first = planning.cell_fingerprint(steps())
  assert planning.cell_fingerprint(steps()) == first
  assert planning.cell_fingerprint(steps("num_heads=2")) != first
  # A comment (a calibration note) is not a change.
  (gin_dir / "sizes.gin").write_text("# measured: 3 steps/s\n\nnum_layers = 2"
                                     "\n  # the size above\n")
  assert planning.cell_fingerprint(steps()) == first
  (gin_dir / "sizes.gin").write_text("num_layers = 3\n")  # an included file
  changed = planning.cell_fingerprint(steps())
  assert changed != first

  os.makedirs(model_dir)
  with open(cells.result_path(model_dir), "w") as f:
    json.dump({"status": "ok", "metrics": {"loss": 1.0},
               "fingerprint": first}, f)
  monkeypatch.setattr(cells.subprocess, "call", None)  # must not be called
  table = specs.TABLES["synth_c4"]
  stale = cells.run_cell(table, "random", table.mini[0], steps(),
                          log=lambda _: None)
  assert stale["status"] == "stale"
  assert model_dir in stale["error"]
  assert os.path.exists(cells.result_path(model_dir))  # nothing deleted
  monkeypatch.setattr(metrics, "collect_metrics", lambda c, d: {"loss": 1.0})
  (gin_dir / "sizes.gin").write_text("num_layers = 2\n")  # back as it ran
  assert cells.run_cell(table, "random", table.mini[0], steps(),
                         log=lambda _: None)["status"] == "ok"


def test_interrupted_cell_resumes_only_with_the_same_commands(tmp_path,
                                                              monkeypatch):
  """A cell records its fingerprint before training: interrupted, it resumes
  next time; a folder with a checkpoint of other (or unrecorded) commands is
  stale and left as it is."""
  table = specs.TABLES["synth_c4"]
  column = table.mini[0]
  monkeypatch.setattr(metrics, "collect_metrics",
                      lambda c, d: {"loss": 1.0, "steps_per_sec": 2.0})
  model_dir = tmp_path / "cell"
  steps = [fake_step(str(model_dir), ok=True)]
  seen = []

  def interrupted(*args, **kwargs):
    seen.append(json.loads((model_dir / "result.json").read_text()))
    (model_dir / "checkpoint").write_text("model.ckpt-100")
    raise KeyboardInterrupt

  monkeypatch.setattr(cells.subprocess, "call", interrupted)
  with pytest.raises(KeyboardInterrupt):
    cells.run_cell(table, "random", column, steps, log=lambda _: None)
  assert seen[0]["status"] == "running"
  assert seen[0]["fingerprint"] == planning.cell_fingerprint(steps)
  monkeypatch.setattr(cells.subprocess, "call", lambda *a, **k: 0)
  resumed = cells.run_cell(table, "random", column, steps, log=lambda _: None)
  assert resumed["status"] == "ok"

  # A checkpoint but no result.json (a run from before cells recorded one).
  legacy = tmp_path / "legacy"
  legacy.mkdir()
  (legacy / "checkpoint").write_text("model.ckpt-0")
  monkeypatch.setattr(cells.subprocess, "call", None)  # must not be called
  stale = cells.run_cell(table, "random", column,
                         [fake_step(str(legacy), ok=True)], log=lambda _: None)
  assert stale["status"] == "stale"
  assert str(legacy) in stale["error"]
  assert not (legacy / "result.json").exists()
  # Interrupted with other commands: stale too.
  (legacy / "result.json").write_text(json.dumps(
      {"status": "running", "fingerprint": "other"}))
  assert cells.run_cell(table, "random", column,
                        [fake_step(str(legacy), ok=True)],
                        log=lambda _: None)["status"] == "stale"


def test_report_only_in_a_fresh_clone_keeps_the_committed_table(tmp_path):
  """Cells with no run folder keep the committed report's values (and say
  so), so re-running a few rows updates a table instead of emptying it."""
  results_dir = tmp_path / "results"
  results_dir.mkdir()
  committed = os.path.join(REPO, "results", "mini")
  for suffix in (".csv", ".commands.sh"):
    with open(os.path.join(committed, "synth_c4" + suffix)) as f:
      (results_dir / ("synth_c4" + suffix)).write_text(f.read())
  before = (results_dir / "synth_c4.csv").read_text()
  assert tables.main(["synth_c4", "--report_only",
                      "--model_dir_root=%s" % (tmp_path / "empty"),
                      "--results_dir=%s" % results_dir]) == 0
  assert (results_dir / "synth_c4.csv").read_text() == before
  text = (results_dir / "synth_c4.md").read_text()
  assert "values kept from the report it rewrote" in text
  assert "random/demo_train" in text
  # A cell with a run folder wins over the committed value.
  cell = tmp_path / "empty" / "mini" / "synth_c4" / "random" / "demo_train"
  cell.mkdir(parents=True)
  (cell / "result.json").write_text(json.dumps(
      {"status": "failed", "error": "boom", "commands": ["mtf_synth --x"]}))
  tables.main(["synth_c4", "--report_only",
               "--model_dir_root=%s" % (tmp_path / "empty"),
               "--results_dir=%s" % results_dir])
  with open(results_dir / "synth_c4.csv") as f:
    random_rows = [r for r in csv.DictReader(f)
                   if r["row"] == "random" and r["source"] == "ours (mini)"]
  assert {r["status"] for r in random_rows} == {"failed"}
  assert "mtf_synth --x\n" in (results_dir / "synth_c4.commands.sh").read_text()


def _row_bindings(table, parameter):
  """{row: the value a table's row gin binds to `parameter` (None: unbound)}."""
  import gin  # pylint: disable=g-import-not-at-top
  search_path, _ = cli.gin_search_path_and_files(())
  for path in search_path:
    gin.add_config_file_search_path(path)
  values = {}
  for row, _ in table.rows:
    gin.clear_config()
    try:
      gin.parse_config_files_and_bindings([table.row_gin(row)], [],
                                          finalize_config=False)
      values[row] = gin.query_parameter(parameter)
    except ValueError:
      values[row] = None
    finally:
      gin.clear_config()
  return values


@pytest.mark.parametrize("table", ["kernel_lra", "kernel_glue",
                                   "kernel_sparsity"])
def test_kernel_tables_have_a_row_for_every_registered_kernel(table):
  from mtf_synth.layers import kernel_attention  # pylint: disable=g-import-not-at-top
  kernels = _row_bindings(specs.TABLES[table], "KernelAttention.kernel")
  assert set(kernels.values()) - {None} == set(kernel_attention.KERNELS)


def test_synthesizer_table_has_a_row_for_every_registered_mode():
  from mtf_synth.attention import synthesizer  # pylint: disable=g-import-not-at-top
  modes = _row_bindings(specs.TABLES["synth_mt_lm"],
                        "SynthesizerAttention.mode")
  components = {component for mode in modes.values() if mode is not None
                for component in synthesizer.parse_mode(mode)}
  assert components == set(synthesizer.COMPONENTS)


def test_small_translation_tables_give_the_decoded_samples_composition():
  with open(report.DEBIAN_MANIFEST) as f:
    datasets = json.load(f)["datasets"]
  table = specs.TABLES["synth_mt_lm"]
  text = report.markdown(table, "small", {}, "t.commands.sh")
  notes = text.split("Decoded samples of the debian corpus")[1].splitlines()
  samples = [line for line in notes if line.startswith("- ")]
  assert len(samples) == 2  # En-De and En-Fr test; the LM has none
  for line, dataset in zip(samples, ("l10n_ende", "l10n_enfr")):
    info = datasets[dataset]["test"]
    assert line.startswith("- test (%d pairs; decoded: the first %d" % (
        info["examples"], sum(info["sample_catalogs"].values())))
    name, count = max(info["sample_catalogs"].items(), key=lambda kv: kv[1])
    assert "by catalog): %s %d, " % (name, count) in line
  assert "Decoded samples" not in report.markdown(table, "mini", {}, "t.sh")
