"""Every shell command in README.md and docs/*.md works as written.

Commands live in ```sh fences. Each is checked by what it runs, in a scratch
folder holding tiny stand-ins for the files the docs name (a random
Hugging Face T5 at path/to/hf_t5, its import at runs/t5_import, a vanilla
model at runs/ft, in.txt, SentencePiece models for the paper-scale and
real-text tasks):
- `mtf_synth ...` (also `python -m mtf_synth`, after `srun ...` or
  `VAR=value`): the command line's preflight (cli.check_command): its flags
  accepted, gin files found and parsed, task, vocabulary and mesh checked,
  nothing trained; a TF_CONFIG it sets must describe a cluster;
- `python -m mtf_synth.hf_t5 ...` and `python -m tasks ...`: run;
- `scripts/reproduce_TABLE.sh ...` and `python scripts/tables.py ...`: the
  table's dry run with those arguments, its first command preflighted;
- any other `python scripts/NAME.py ...`: its flags are in its --help (and
  the command after launch_local_cluster.py's `--` is checked as above).
A command that cannot be checked here carries `# unchecked: REASON`; the
scripts it names must still exist.
"""

import dataclasses
import os
import re
import runpy
import shlex
import shutil
import sys

import pytest
import tensorflow.compat.v1 as tf

from mtf_synth import cli
from mtf_synth import hf_t5
from mtf_synth.runtime import cluster as cluster_lib
from test_hf_t5 import write_random_hf_t5

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
PAGES = ["README.md"] + sorted(
    os.path.join("docs", name) for name in os.listdir(os.path.join(REPO, "docs"))
    if name.endswith(".md"))
_FENCE = re.compile(r"^```(\S*)\s*$")
# What a fence may be labelled: `sh` blocks are commands, the rest are not.
_FENCE_LABELS = ("sh", "text", "gin")
_UNCHECKED = re.compile(r"#\s*unchecked:\s*(\S.*)$")
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_REPO_PATH = re.compile(r"^(scripts|bench|gin|tasks|tests)/\S+$")
# The stand-in T5 has 60 SentencePiece pieces + 100 sentinels, and an
# embedding padded to a multiple of 128, as T5's 32100 tokens in 32128 rows.
_STAND_IN_PIECES = 60
_STAND_IN_T5_ROWS = 256
# `python -m MODULE` commands that run as written (quick, or on stand-ins).
_RUN_MODULES = ("mtf_synth.hf_t5", "tasks")
# Documented commands that fail for a known, reported reason: {a part of the
# command: the reason}. Strict: one that starts working fails the test.
_KNOWN_BUGS = {
    "--model_dir_root=gs://": "scripts/tables.py makes a gs:// "
                              "--model_dir_root a local path",
}


@dataclasses.dataclass
class Command:
  page: str
  line: int
  text: str  # the command as written, continuation lines joined
  unchecked: str  # the reason it is not checked, or ""

  def __str__(self):
    return "%s:%d" % (self.page, self.line)


def fences(page):
  """[(label, first line number, [lines])] of the page's fenced blocks."""
  blocks, current = [], None
  with open(os.path.join(REPO, page)) as f:
    for number, line in enumerate(f, start=1):
      match = _FENCE.match(line)
      if current is None and match:
        current = (match[1], number + 1, [])
      elif current is not None and line.startswith("```"):
        blocks.append(current)
        current = None
      elif current is not None:
        current[2].append(line.rstrip("\n"))
  assert current is None, "%s: a ``` fence is not closed" % page
  return blocks


def commands(page):
  """The commands of the page's ```sh blocks, comment lines dropped."""
  found = []
  for label, first, lines in fences(page):
    if label != "sh":
      continue
    start, text = None, ""
    for number, line in enumerate(lines, start=first):
      if start is None and (not line.strip() or
                            line.lstrip().startswith("#")):
        continue
      start = number if start is None else start
      if line.endswith("\\"):
        text += line[:-1]
        continue
      text += line
      unchecked = _UNCHECKED.search(text)
      found.append(Command(page, start, text,
                           unchecked[1] if unchecked else ""))
      start, text = None, ""
  return found


ALL_COMMANDS = [c for page in PAGES for c in commands(page)]


def test_fences_are_labelled():
  for page in PAGES:
    for label, line, _ in fences(page):
      assert label in _FENCE_LABELS, (
          "%s:%d: label the fence `sh` (a command, checked by this test) or "
          "one of %s" % (page, line - 1, ", ".join(_FENCE_LABELS[1:])))


def anchors(page):
  """The #anchors GitHub gives the page's headings (outside fences)."""
  found, in_fence = set(), False
  with open(os.path.join(REPO, page)) as f:
    for line in f:
      in_fence ^= line.startswith("```")
      heading = re.match(r"#+ (.*)$", line)
      if heading and not in_fence:
        found.add(re.sub(r"[^\w\- ]", "", heading[1].lower()).replace(
            " ", "-"))
  return found


def test_relative_links_lead_to_files_and_headings():
  for page in PAGES:
    with open(os.path.join(REPO, page)) as f:
      text = f.read()
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)]*))?\)", text):
      if "://" in target:
        continue
      path = os.path.normpath(os.path.join(os.path.dirname(page),
                                           target or os.path.basename(page)))
      assert os.path.exists(os.path.join(REPO, path)), (
          "%s links to %s, which is missing" % (page, target))
      assert not anchor or anchor in anchors(path), (
          "%s links to %s#%s, which has no such heading" % (page, target,
                                                            anchor))


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
  """A scratch folder with what the documented commands read."""
  from tasks import sentencepiece_training  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("docs")
  spm = sentencepiece_training.train(
      ["translate English to German: the file %d was not found" % i
       for i in range(200)], str(root / "corpus" / "spm" / "debian"),
      vocab_size=_STAND_IN_PIECES)
  hf_dir = root / "path" / "to" / "hf_t5"
  write_random_hf_t5(str(hf_dir), "v1.1", vocab_size=_STAND_IN_T5_ROWS)
  shutil.copy(spm, hf_dir / "spiece.model")
  hf_t5.import_hf_t5(str(hf_dir), str(root / "runs" / "t5_import"))
  shutil.copytree(root / "runs" / "t5_import", root / "runs" / "ft")
  (root / "in.txt").write_text("reverse: a b c\nsort: q w e\n")
  (root / "targets.txt").write_text("c b a\ne q w\n")
  return {"root": root, "env": {"MTF_SYNTH_SPM_MODEL": spm,
                                "MTF_SYNTH_DEBIAN_DIR": str(root / "corpus")}}


def split(command):
  """(environment assignments, argv) of a command line."""
  argv = shlex.split(command.text, comments=True)
  env = {}
  while argv and _ENV_ASSIGNMENT.match(argv[0]):
    name, value = argv.pop(0).split("=", 1)
    env[name] = value
  return env, argv


def run_python(argv, capsys, module=False):
  """Runs `python [-m] argv[0] ARGS` in this process: (exit code, stdout)."""
  saved_argv, saved_verbosity = sys.argv, tf.logging.get_verbosity()
  sys.argv = list(argv)
  code = 0
  try:
    if module:
      runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    else:
      runpy.run_path(os.path.join(REPO, argv[0]), run_name="__main__")
  except SystemExit as e:
    code = e.code or 0
  finally:
    sys.argv = saved_argv
    tf.logging.set_verbosity(saved_verbosity)  # hf_t5 lowers it
  out, err = capsys.readouterr()
  return code, out + err


def preflight(argv, env):
  """The command line's checks of `mtf_synth ARGS`; nothing runs."""
  cli.check_command(argv[1:])
  if "TF_CONFIG" in env:
    assert cluster_lib.resolve() is not None, "TF_CONFIG names no cluster"


def dry_run(table_args, capsys):
  """The table's commands with these arguments; the first preflighted."""
  code, out = run_python(["scripts/tables.py"] + table_args + ["--dry_run"],
                         capsys)
  assert code == 0, out
  planned = [shlex.split(line) for line in out.splitlines()
             if line.startswith("mtf_synth ")]
  assert planned, "the dry run planned no command"
  cli.check_command(planned[0][1:])
  roots = [a.split("=", 1)[1] for a in table_args
           if a.startswith("--model_dir_root=")]
  for root in roots:
    expected = root if "://" in root else os.path.abspath(root)
    assert planned[0][1].startswith("--model_dir=%s/" % expected), (
        "--model_dir_root=%s became %s" % (root, planned[0][1]))


def flags_in_help(argv, capsys):
  """Each --flag of `python SCRIPT ...` is one the script's --help lists."""
  code, out = run_python([argv[0], "--help"], capsys)
  assert code == 0, out
  for flag in argv[1:]:
    if flag.startswith("--"):
      name = flag.split("=", 1)[0]
      assert re.search(re.escape(name) + r"\b", out), (
          "%s has no flag %s" % (argv[0], name))


def check(env, argv, capsys):
  """Checks one command (see the module docstring)."""
  if argv[0] == "srun":
    argv = argv[argv.index("mtf_synth"):]
  if argv[:3] == ["python", "-m", "mtf_synth"]:
    argv = argv[2:]
  if argv[0] == "bash":
    argv = argv[1:]
  if argv[0] == "mtf_synth":
    preflight(argv, env)
  elif argv[:2] == ["python", "-m"] and argv[2] in _RUN_MODULES:
    code, out = run_python(argv[2:], capsys, module=True)
    assert code == 0, out
  elif re.match(r"scripts/reproduce_\w+\.sh$", argv[0]):
    with open(os.path.join(REPO, argv[0])) as f:
      table = re.search(r"scripts/tables\.py (\w+) \"\$@\"", f.read())[1]
    dry_run([table] + argv[1:], capsys)
  elif argv[:2] == ["python", "scripts/tables.py"]:
    dry_run(argv[2:], capsys)
  elif argv[0] == "python" and argv[1].startswith("scripts/"):
    own = argv[1:argv.index("--")] if "--" in argv else argv[1:]
    flags_in_help(own, capsys)
    if "--" in argv:
      check(env, argv[argv.index("--") + 1:], capsys)
  else:
    pytest.fail("no check for `%s`: run it through mtf_synth, python -m or "
                "a script, or mark it `# unchecked: REASON`" % argv[0])


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=str)
def test_documented_command_works(command, stand_ins, monkeypatch, capsys,
                                  request):
  for part, reason in _KNOWN_BUGS.items():
    if part in command.text:
      request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
  env, argv = split(command)
  for path in filter(_REPO_PATH.match, argv):
    assert os.path.exists(os.path.join(REPO, path)), (
        "%s: %s does not exist" % (command, path))
  if command.unchecked:
    return
  monkeypatch.chdir(stand_ins["root"])
  for name, value in dict(stand_ins["env"], **env).items():
    monkeypatch.setenv(name, value)
  try:
    check(env, argv, capsys)
  except Exception as e:  # pylint: disable=broad-except
    pytest.fail("%s: `%s` fails: %s" % (command, " ".join(
        command.text.split()), " ".join(str(e).split())), pytrace=False)
