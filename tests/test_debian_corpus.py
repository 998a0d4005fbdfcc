"""The debian corpus builder (scripts/build_corpus.py, tasks/debian_corpus.py)
and its seqio tasks (tasks/debian.py), on small inputs the tests write:
gettext .mo catalogs (written by a minimal .mo writer here), a Packages list
and reST documents."""

import hashlib
import json
import os
import re
import struct
import sys

import pytest
import seqio
import sentencepiece

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir,
                                "scripts"))

import build_corpus  # noqa: E402  pylint: disable=g-import-not-at-top
from tasks import debian  # noqa: E402  pylint: disable=g-import-not-at-top
from tasks import debian_corpus  # noqa: E402  pylint: disable=g-import-not-at-top
from tasks.errors import TaskConfigError  # noqa: E402  pylint: disable=g-import-not-at-top


def mo_bytes(messages, charset="UTF-8", byte_order="<"):
  """A GNU .mo file of {msgid: msgstr} (keys may hold plural / context)."""
  entries = sorted({"": "Content-Type: text/plain; charset=%s\n" % charset,
                    **messages}.items())
  ids = [k.encode(charset) for k, _ in entries]
  strs = [v.encode(charset) for _, v in entries]
  count = len(entries)
  ids_at, strs_at = 28, 28 + 8 * count
  data_at = strs_at + 8 * count
  tables, blob = [b"", b""], b""
  for table, strings in enumerate((ids, strs)):
    for s in strings:
      tables[table] += struct.pack(byte_order + "2I", len(s),
                                   data_at + len(blob))
      blob += s + b"\x00"
  header = struct.pack(byte_order + "7I", debian_corpus.MO_MAGIC, 0, count,
                       ids_at, strs_at, 0, 0)
  return header + tables[0] + tables[1] + blob


def test_read_mo_singulars_contexts_charsets_byte_orders():
  messages = {"Open the file now": "Datei jetzt öffnen",
              "menu\x04Close the window": "Fenster schließen",
              "%d file removed\x00%d files removed":
                  "%d Datei entfernt\x00%d Dateien entfernt",
              "untranslated message here": ""}
  expected = {"Open the file now": "Datei jetzt öffnen",
              "Close the window": "Fenster schließen",
              "%d file removed": "%d Datei entfernt"}
  for charset in ("UTF-8", "ISO-8859-1"):
    for order in "<>":
      assert debian_corpus.read_mo(mo_bytes(messages, charset, order)) == (
          expected)
  with pytest.raises(ValueError):
    debian_corpus.read_mo(b"\x00" * 28)


def test_translation_pairs_normalise_and_filter():
  messages = {
      "Cannot open\n  file %s:\t%s": "Kann Datei %s nicht\n öffnen: %s",
      "two words": "zwei Wörter",                       # < 3 words
      " ".join(["word"] * 61): " ".join(["Wort"] * 61),  # > 60 words
      "same in both languages": "same in both languages",  # untranslated
      "\aTimed out waiting for input": "\aZeit abgelaufen beim Warten",
      "Cannot open file %s: %s": "Kann Datei %s nicht öffnen: %s",  # dup
  }
  assert debian_corpus.translation_pairs(messages) == [
      ("Cannot open file %s: %s", "Kann Datei %s nicht öffnen: %s"),
      ("Timed out waiting for input", "Zeit abgelaufen beim Warten")]


def test_descriptions_take_long_text_from_translation_en():
  packages = ("Package: foo\nSource: foo-src (1.2)\nSection: contrib/utils\n"
              "Description: short text\nDescription-md5: abc\n\n"
              "Package: bar\nSection: oldlibs\nDescription: not a label\n")
  translations = ("Package: foo\nDescription-md5: abc\nDescription-en: "
                  "short text\n long one\n .\n more\n")
  assert debian_corpus.labelled_descriptions([packages], [translations]) == {
      "foo": ("foo-src", "utils", "short text long one more")}


def _message(catalog, i):
  return ("%s message number %d with %%s" % (catalog, i),
          "%s Nachricht Nummer %d mit %%s" % (catalog, i))


# Fixture packages: "corpus" owns catalog00..19, the documents and the man
# folder; "other" owns the held-out catalogs; "stray" catalogs belong to
# neither (the base image's) and must not be read.
PINS = ("corpus=1.0",)
HELDOUT_PINS = ("other=2.0",)
HELDOUT_CATALOGS = ("held0", "held1", "catalog05")  # the last: a clash


def _write_catalog(folder, name, messages):
  with open(os.path.join(folder, name + ".mo"), "wb") as f:
    f.write(mo_bytes(messages))
  return os.path.join(folder, name + ".mo")


def write_inputs(root):
  """Catalogs (20 per language, sizes 5..24, + held-out and stray ones),
  reST documents and a Packages list; returns (the builder's input flags,
  {package: files} as dpkg -L would list them)."""
  owned = {"corpus": [], "other": []}
  for language in debian_corpus.LANGUAGES:
    folder = os.path.join(root, "locale", language, "LC_MESSAGES")
    os.makedirs(folder)
    for c in range(20):
      name = "catalog%02d" % c
      # A message in every catalog, differing only in punctuation and
      # case: kept once, in train.
      messages = dict([_message(name, i) for i in range(5 + c)] +
                      [("Report bugs to the maintainer" + "!" * c,
                        "Fehler an den Betreuer melden")])
      owned["corpus"].append(_write_catalog(folder, name, messages))
    for k, name in enumerate(HELDOUT_CATALOGS):
      owned["other"].append(_write_catalog(folder, name, dict(
          [_message(name, i) for i in range(8)] +
          [("REPORT BUGS TO THE MAINTAINER" + "?" * k,
            "Fehler an den Betreuer melden")])))
    _write_catalog(folder, "stray", dict(_message("stray", i)
                                         for i in range(30)))
  docs = os.path.join(root, "python_doc")
  os.makedirs(docs)
  for d in range(20):
    with open(os.path.join(docs, "doc%02d.rst.txt" % d), "w") as f:
      f.write("Title\n=====\n\n" + "\n\n".join(
          "Paragraph %s of document number %d uses :func:`len` and "
          "``print`` in plain English prose." % (p, d) for p in "abcd") +
              "\n\n--option -x -y -z a table row, not prose at all 1 2 3\n")
    owned["corpus"].append(f.name)
  os.makedirs(os.path.join(root, "man"))
  lists = os.path.join(root, "lists")
  os.makedirs(lists)
  with open(os.path.join(lists, "test_Packages"), "w") as f:
    for section in debian_corpus.SECTIONS + ("oldlibs",):
      for p in range(60):
        f.write("Package: %s-pkg%d\nSource: %s-src%d (1.0)\nSection: %s\n"
                "Description: a %s package number %d\n its long text\n .\n"
                " second paragraph\n\n" % (section, p, section, p % 30,
                                           "main/" + section, section, p))
  flags = ["--no_install", "--locale_dir=" + os.path.join(root, "locale"),
           "--man_dir=" + os.path.join(root, "man"),
           "--python_doc_dir=" + docs, "--apt_lists_dir=" + lists,
           "--vocab_size=120"]
  return flags, owned


def fake_dpkg(monkeypatch, owned, installed=PINS + HELDOUT_PINS):
  """The builder's pins and dpkg queries, on the fixture's packages."""
  monkeypatch.setattr(build_corpus, "PACKAGES", PINS)
  monkeypatch.setattr(build_corpus, "HELDOUT_PACKAGES", HELDOUT_PINS)
  monkeypatch.setattr(build_corpus, "installed_versions",
                      lambda pins: sorted(installed))
  monkeypatch.setattr(build_corpus, "dpkg_files", lambda pins: sorted(
      f for pin in pins for f in owned[build_corpus.name_of(pin)]))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """The inputs and two builds of them: {"flags", "owned", "runs": [dir,
  dir]}."""
  root = str(tmp_path_factory.mktemp("debian"))
  flags, owned = write_inputs(root)
  runs = []
  with pytest.MonkeyPatch.context() as monkeypatch:
    fake_dpkg(monkeypatch, owned)
    for run in ("first", "second"):
      output = os.path.join(root, run)
      assert build_corpus.main(flags + ["--output_dir=" + output]) == 0
      runs.append(output)
  return {"root": root, "runs": runs, "flags": flags, "owned": owned}


def _manifest(output):
  with open(os.path.join(output, debian_corpus.MANIFEST)) as f:
    return json.load(f)


def _lines(output, dataset, split):
  with open(debian_corpus.dataset_files(output, dataset)[split]) as f:
    return [line.rstrip("\n").split("\t") for line in f]


def test_build_is_deterministic_and_manifest_hashes_files(built):
  first, second = (_manifest(run) for run in built["runs"])
  assert first == second
  assert first["packages"] == list(PINS)
  assert first["heldout_packages"] == list(HELDOUT_PINS)
  processor = sentencepiece.SentencePieceProcessor(model_file=os.path.join(
      built["runs"][0], first["vocabulary"]["file"]))
  pieces = "".join("%s\t%r\n" % (processor.id_to_piece(i),
                                  processor.get_score(i))
                   for i in range(processor.get_piece_size()))
  assert hashlib.sha256(pieces.encode()).hexdigest() == (
      first["vocabulary"]["sha256"])
  for name, splits in first["datasets"].items():
    for split, info in splits.items():
      with open(os.path.join(built["runs"][1], info["file"]), "rb") as f:
        data = f.read()
      assert hashlib.sha256(data).hexdigest() == info["sha256"]
      assert data.count(b"\n") == info["examples"] > 0, (name, split)


def test_translations_split_by_catalog(built):
  output = built["runs"][0]
  datasets = _manifest(output)["datasets"]
  for language in debian_corpus.LANGUAGES:
    name = "l10n_en" + language
    catalogs = {s: set(datasets[name][s]["units"]) for s in
                debian_corpus.TRANSLATION_SPLITS}
    # Only the pinned packages' catalogs: not the stray one, and not the
    # held-out catalog named like a corpus catalog.
    assert set.union(*catalogs.values()) == {
        "catalog%02d" % c for c in range(20)} | {"held0", "held1"}
    assert catalogs["heldout"] == {"held0", "held1"}
    assert not catalogs["train"] & (catalogs["test"] | catalogs["validation"])
    for split, names in catalogs.items():
      # Every pair comes from its split's catalogs (or is the shared one).
      sources = {en.split(" ")[0] for en, _ in _lines(output, name, split)}
      assert sources - {"Report"} == names
    train = {en for en, _ in _lines(output, name, "train")}
    assert sum(en.startswith("Report bugs") for en in train) == 1
    for split in ("validation", "test", "heldout"):
      assert not train & {en for en, _ in _lines(output, name, split)}
    assert all("%s" in en and "%s" in target
               for en, target in _lines(output, name, "test"))


def test_evaluation_sources_differ_from_train_after_normalisation(built):
  output = built["runs"][0]
  for language in debian_corpus.LANGUAGES:
    name = "l10n_en" + language
    train = {debian_corpus.source_key(en)
             for en, _ in _lines(output, name, "train")}
    dropped = 0
    for split in ("validation", "test", "heldout"):
      keys = [debian_corpus.source_key(en)
              for en, _ in _lines(output, name, split)]
      assert not train & set(keys) and len(keys) == len(set(keys))
      info = _manifest(output)["datasets"][name][split]
      dropped += info["dropped_same_normalised_source"]
    # Each evaluation catalog's "Report bugs ...!!" variant and each
    # held-out catalog's upper-case one: an exact match keeps them.
    assert dropped == len(_manifest(output)["datasets"][name]["validation"][
        "units"] + _manifest(output)["datasets"][name]["test"]["units"]) + 2


def test_source_key_lowercases_and_collapses_punctuation_and_space():
  assert debian_corpus.source_key("%s is a function.") == (
      debian_corpus.source_key("%S  is a\tfunction"))
  assert debian_corpus.source_key("Can't open: file") == "can t open file"
  assert debian_corpus.source_key("open file") != (
      debian_corpus.source_key("open files"))


def test_evaluation_rows_are_a_seeded_sample_across_catalogs(built):
  output = built["runs"][0]
  for split in ("validation", "test", "heldout"):
    rows = [tuple(r) for r in _lines(output, "l10n_ende", split)]
    assert rows == debian_corpus.seeded_order(rows)
    assert rows != sorted(rows)  # not sorted by catalog (the old layout)
    info = _manifest(output)["datasets"]["l10n_ende"][split]
    assert sum(info["sample_catalogs"].values()) == min(
        len(rows), debian_corpus.EVAL_EXAMPLES)
    assert set(info["sample_catalogs"]) == set(info["units"])


def test_check_passes_on_the_same_inputs_and_names_a_changed_split(
    built, tmp_path, monkeypatch, capsys):
  fake_dpkg(monkeypatch, built["owned"])
  recorded = str(tmp_path / "manifest.json")
  flags = built["flags"] + ["--manifest=" + recorded]
  assert build_corpus.main(flags + ["--output_dir=" + str(tmp_path / "a"),
                                    "--record"]) == 0
  capsys.readouterr()
  assert build_corpus.main(flags + ["--check"]) == 0
  assert capsys.readouterr().out.startswith("ok:")
  test_catalog = _manifest(str(tmp_path / "a"))["datasets"]["l10n_ende"][
      "test"]["units"][0]
  path = os.path.join(built["root"], "locale", "de", "LC_MESSAGES",
                      test_catalog + ".mo")
  with open(path, "rb") as f:
    original = f.read()
  try:
    with open(path, "wb") as f:  # Same sizes: the catalog's split stays.
      f.write(original.replace(b"Nachricht", b"Botschaft"))
    assert build_corpus.main(flags + ["--check"]) == 1
  finally:
    with open(path, "wb") as f:
      f.write(original)
  # One line: the test split (train and so the vocabulary are unchanged).
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 1, lines
  (line,) = lines
  assert line.startswith("mismatch: l10n_ende/test: same units, other bytes")
  fake_dpkg(monkeypatch, built["owned"], installed=("corpus=0.9", "other=2.0"))
  assert build_corpus.main(flags + ["--check"]) == 2
  error = capsys.readouterr().err.strip()
  assert error.startswith("error: corpus=1.0 is not installed (found "
                          "corpus=0.9)") and "\n" not in error


def test_lm_and_sections(built):
  output = built["runs"][0]
  paragraphs = [p for s in debian_corpus.SPLITS
                for (p,) in _lines(output, "lm", s)]
  assert len(paragraphs) == 20 * 4  # the option-table line is not prose
  assert "uses len and print in plain English prose." in paragraphs[0]
  sections = _manifest(output)["datasets"]["sections"]
  for split in debian_corpus.SPLITS:
    labels = [label for label, _ in _lines(output, "sections", split)]
    counts = {label: labels.count(label) for label in set(labels)}
    assert set(counts) == set(debian_corpus.SECTIONS)  # no "oldlibs"
    assert len(set(counts.values())) == 1  # balanced
    assert sections[split]["examples"] == len(labels)
  texts = [t for _, t in _lines(output, "sections", "train")]
  assert "a games package number 0 its long text second paragraph" in texts


def _examples(task, split, n):
  dataset = seqio.get_mixture_or_task(task).get_dataset(
      None, split=split, shuffle=False)
  return list(dataset.take(n).as_numpy_iterator())


def test_tasks_read_the_corpus(built, monkeypatch):
  monkeypatch.setenv("MTF_SYNTH_DEBIAN_DIR", built["runs"][0])
  output = built["runs"][0]
  for split in ("test", "heldout"):
    en, de = _lines(output, "l10n_ende", split)[0]
    example = _examples("debian_l10n_ende", split, 1)[0]
    assert example["inputs_pretokenized"].decode() == (
        "translate English to German: " + en)
    assert example["targets_pretokenized"].decode() == de
  vocabulary = seqio.get_mixture_or_task(
      "debian_l10n_ende").output_features["targets"].vocabulary
  assert vocabulary.decode(example["targets"].tolist()) == de
  (paragraph,) = _lines(output, "lm", "train")[0]
  lm = _examples("debian_lm_bytes", "train", 1)[0]
  assert "inputs" not in lm and lm["targets_pretokenized"].decode() == (
      paragraph)
  label, text = _lines(output, "sections", "validation")[0]
  section = _examples("debian_sections", "validation", 1)[0]
  assert section["inputs_pretokenized"].decode() == (
      "debian_sections text: " + text)
  assert section["targets_pretokenized"].decode() == label


def test_missing_corpus_is_one_line_naming_the_builder(tmp_path, monkeypatch):
  monkeypatch.setenv("MTF_SYNTH_DEBIAN_DIR", str(tmp_path))
  with pytest.raises(TaskConfigError, match="scripts/build_corpus.py"):
    _examples("debian_lm_bytes", "train", 1)


def test_install_needs_apt_get_and_root(monkeypatch):
  monkeypatch.setattr(build_corpus.shutil, "which", lambda _: None)
  with pytest.raises(TaskConfigError, match="apt-get not found.*--no_install"):
    build_corpus.install(build_corpus.PACKAGES)
  monkeypatch.setattr(build_corpus.shutil, "which", lambda _: "/apt-get")
  monkeypatch.setattr(build_corpus.os, "geteuid", lambda: 1000)
  with pytest.raises(TaskConfigError, match="needs root.*--no_install"):
    build_corpus.install(build_corpus.PACKAGES)
  monkeypatch.setattr(build_corpus.os, "geteuid", lambda: 0)
  monkeypatch.setattr(build_corpus.subprocess, "run", _fail)
  with pytest.raises(TaskConfigError, match="apt-get update. failed .exit "
                     "100.*--no_install"):
    build_corpus.install(build_corpus.PACKAGES)


def _fail(command, **_):
  raise build_corpus.subprocess.CalledProcessError(100, command)


def test_small_evaluation_decodes_the_manifests_sample():
  """gin/tables/small/eval.gin decodes as many rows as the builder's sample
  (whose per-catalog composition the manifest gives)."""
  with open(os.path.join(os.path.dirname(__file__), os.pardir, "gin",
                         "tables", "small", "eval.gin")) as f:
    bound = re.search(r"num_eval_examples = (\d+)", f.read()).group(1)
  assert int(bound) == debian_corpus.EVAL_EXAMPLES


def test_compare_manifests_names_each_difference_and_its_cause():
  recorded = {"packages": ["tar=1.34"], "heldout_packages": ["pv=1.6"],
              "datasets": {"l10n_ende": {
                  "test": {"units": ["tar"], "sha256": "a", "examples": 3},
                  "train": {"units": ["wget"], "sha256": "b", "examples": 9}},
                           "sections": {"test": {
                               "units": "by source package", "sha256": "c",
                               "examples": 5}}},
              "vocabulary": {"sha256": "d"}}
  assert debian_corpus.compare_manifests(recorded, recorded) == []
  built = json.loads(json.dumps(recorded))
  built["packages"] = ["tar=1.35"]
  built["datasets"]["l10n_ende"]["test"]["units"] = ["tar", "sed"]
  built["datasets"]["sections"]["test"]["sha256"] = "x"
  built["vocabulary"]["sha256"] = "y"
  del built["datasets"]["l10n_ende"]["train"]
  problems = debian_corpus.compare_manifests(built, recorded)
  assert [p.split(":")[0] for p in problems] == [
      "packages", "l10n_ende/test", "l10n_ende/train", "sections/test",
      "vocabulary"]
  assert "tar=1.34, tar=1.35" in problems[0] and "pinned" in problems[0]
  assert "(sed)" in problems[1]
  assert "no longer writes" in problems[2]
  assert "same units, other bytes" in problems[3]
  assert "sentencepiece version" in problems[4]
  assert all("\n" not in p for p in problems)


def test_check_without_a_recorded_manifest_is_one_line(tmp_path, capsys):
  missing = str(tmp_path / "none.json")
  assert build_corpus.main(["--check", "--no_install",
                            "--manifest=" + missing]) == 2
  error = capsys.readouterr().err.strip()
  assert error.startswith("error: cannot read the recorded manifest %s" %
                          missing) and "--record" in error
  assert "\n" not in error
