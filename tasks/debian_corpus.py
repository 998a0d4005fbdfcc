"""Builds the `debian` corpus from human-written text installed with Debian.

Three datasets, each cut into train / validation / test by whole units (a
catalog, a document, a source package), so no unit leaks across splits:
- l10n_en{de,fr}: English -> German / French message pairs from the gettext
  catalogs (.mo) of the pinned packages, split by catalog; a validation or
  test pair whose normalised source (`source_key`) is in train is dropped;
  the evaluation splits are written in a seeded random order, so their
  first EVAL_EXAMPLES rows are a fixed sample across all their catalogs; a
  fourth split, heldout, holds the catalogs of packages the corpus never
  reads (build_corpus.HELDOUT_PACKAGES), sampled the same way;
- lm: English paragraphs of manual pages (and python3-doc's reST sources),
  split by document;
- sections: package descriptions labelled with their archive section (about
  10 sections, balanced), split by source package.

Everything here is pure and deterministic: the same input files give the
same output bytes (sorted inputs, units ordered by sha256 of their name,
evaluation rows ordered by sha256 of SAMPLE_SEED and the row). scripts/build_corpus.py gathers the inputs (apt-get, man) and
calls `build`; tasks/debian.py registers the seqio tasks over the output.
"""
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import re
import struct
import subprocess
from typing import (Callable, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Tuple)

SPLITS = ("train", "validation", "test")
# Translation pairs of packages outside the corpus: a second test set.
HELDOUT = "heldout"
TRANSLATION_SPLITS = SPLITS + (HELDOUT,)
# Evaluation splits are written in the order of sha256(SAMPLE_SEED, row), so
# their first EVAL_EXAMPLES rows (what gin/tables/small/eval.gin decodes) are
# a seeded sample across all their catalogs.
SAMPLE_SEED = "debian-eval-0"
EVAL_EXAMPLES = 1000
# Share of each split's pairs / paragraphs / descriptions (train: the rest).
EVAL_FRACTIONS = {"validation": 0.05, "test": 0.05}
LANGUAGES = ("de", "fr")
# Words per side of a translation pair (the 3-60 filter).
MIN_PAIR_WORDS, MAX_PAIR_WORDS = 3, 60
# An LM paragraph: at least this many words, mostly plain words (not option
# tables or code).
MIN_PARAGRAPH_WORDS = 8
MIN_PLAIN_WORD_SHARE = 0.7
# The classification labels: ten large archive sections (bookworm main:
# 1,000 to 6,700 packages each), so that balancing keeps ~900 per label.
SECTIONS = ("admin", "devel", "doc", "games", "libs", "net", "python",
            "science", "utils", "x11")
MANIFEST = "manifest.json"
SPM_PREFIX = "spm/debian"


# =============================== splitting ===================================
def _name_hash(name: str) -> str:
  return hashlib.sha256(name.encode("utf-8")).hexdigest()


def assign_splits(sizes: Mapping[str, int],
                  fractions: Mapping[str, float] = None) -> Dict[str, str]:
  """{unit: split}: units in sha256-of-name order fill each eval split up to
  its share of the total size; the rest (and any unit too big to fit) train.

  Size-aware, so one huge catalog cannot become the whole test set.
  """
  fractions = EVAL_FRACTIONS if fractions is None else fractions
  total = sum(sizes.values())
  filled = {split: 0 for split in fractions}
  assignment = {}
  for unit in sorted(sizes, key=_name_hash):
    assignment[unit] = "train"
    for split, fraction in fractions.items():
      if sizes[unit] and filled[split] + sizes[unit] <= fraction * total:
        filled[split] += sizes[unit]
        assignment[unit] = split
        break
  return assignment


def dedupe_across_splits(
    examples: Mapping[str, Sequence[Tuple[str, ...]]],
    key: Callable[[Tuple[str, ...]], str],
    splits: Sequence[str] = SPLITS) -> Dict[str, List[Tuple[str, ...]]]:
  """Drops repeated examples (same key), first in `splits` order: nothing in
  validation or test is also in train."""
  seen, result = set(), {}
  for split in splits:
    result[split] = []
    for example in examples.get(split, ()):
      if key(example) not in seen:
        seen.add(key(example))
        result[split].append(example)
  return result


def seeded_order(rows: Iterable[Tuple[str, ...]],
                 text: Callable[[Tuple[str, ...]], Tuple[str, ...]] = tuple
                 ) -> List[Tuple[str, ...]]:
  """`rows` sorted by sha256 of SAMPLE_SEED and `text(row)` (the fields
  written): a fixed shuffle, so any prefix is a seeded sample of all."""
  return sorted(rows, key=lambda row: _name_hash(
      "\0".join((SAMPLE_SEED,) + text(row))))


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalise(text: str) -> str:
  """Whitespace runs (newlines, tabs) to one space, control characters
  (a terminal bell) removed; nothing else changes."""
  return " ".join(_CONTROL.sub("", text).split())


_PUNCTUATION_AND_SPACE = re.compile(r"[\W_]+")


def source_key(text: str) -> str:
  """The source sentence as deduplication compares it: lower-cased, every
  run of punctuation and whitespace one space, none at the ends
  ("%s is a function." and "%S is a  function" are the same)."""
  return _PUNCTUATION_AND_SPACE.sub(" ", text.lower()).strip()


# =============================== translation =================================
MO_MAGIC = 0x950412de


def read_mo(data: bytes) -> Dict[str, str]:
  """{msgid: msgstr} of a compiled gettext catalog (GNU .mo format).

  Plural entries give their singular forms; a message context is dropped;
  the header and untranslated entries are left out.
  """
  for order in "<>":
    magic, _, count, ids_at, strs_at = struct.unpack_from(order + "5I", data)
    if magic == MO_MAGIC:
      break
  else:
    raise ValueError("not a gettext .mo file (bad magic number)")

  def strings(table_at):
    for i in range(count):
      length, at = struct.unpack_from(order + "2I", data, table_at + 8 * i)
      yield data[at:at + length]

  raw = list(zip(strings(ids_at), strings(strs_at)))
  header = dict(raw).get(b"", b"").decode("ascii", errors="replace")
  charset = re.search(r"charset=([-\w]+)", header)
  encoding = charset.group(1) if charset else "utf-8"
  messages = {}
  for msgid, msgstr in raw:
    msgid = msgid.split(b"\x00")[0].split(b"\x04")[-1]
    msgstr = msgstr.split(b"\x00")[0]
    if msgid and msgstr:
      messages[msgid.decode(encoding, errors="replace")] = msgstr.decode(
          encoding, errors="replace")
  return messages


def translation_pairs(messages: Mapping[str, str]) -> List[Tuple[str, str]]:
  """Normalised (English, translation) pairs of 3-60 words a side, sorted;
  untranslated (identical) messages dropped. printf placeholders are kept."""
  pairs = set()
  for source, target in messages.items():
    source, target = normalise(source), normalise(target)
    if source == target:
      continue
    if all(MIN_PAIR_WORDS <= len(s.split()) <= MAX_PAIR_WORDS
           for s in (source, target)):
      pairs.add((source, target))
  return sorted(pairs)


def split_translations(catalogs: Mapping[str, bytes],
                       heldout_catalogs: Mapping[str, bytes] = None):
  """(pairs per split, catalogs per split, build statistics) from {catalog
  name: .mo bytes}; `heldout_catalogs` (other packages') give the heldout
  split, except any named like a corpus catalog.

  Split by catalog. A pair is dropped from validation, test and heldout when
  its `source_key` was met before (train first, then each split in turn), so
  no evaluation source is a train source up to case and punctuation; the
  statistics count those drops, and those an exact-match rule would make.
  Evaluation splits come in `seeded_order`; the statistics give the
  catalogs of their first EVAL_EXAMPLES rows.
  """
  heldout_catalogs = {name: data for name, data in
                      (heldout_catalogs or {}).items() if name not in catalogs}
  pairs = {name: translation_pairs(read_mo(data))
           for name, data in sorted(catalogs.items())}
  assignment = assign_splits({name: len(p) for name, p in pairs.items()})
  for name in heldout_catalogs:
    pairs[name] = translation_pairs(read_mo(heldout_catalogs[name]))
    assignment[name] = HELDOUT
  by_split = {split: [(name,) + pair for name in sorted(pairs)
                      if assignment[name] == split for pair in pairs[name]]
              for split in TRANSLATION_SPLITS}
  unique = dedupe_across_splits(by_split, lambda row: source_key(row[1]),
                                TRANSLATION_SPLITS)
  exact = dedupe_across_splits(by_split, lambda row: row[1],
                               TRANSLATION_SPLITS)
  statistics = {split: {} for split in TRANSLATION_SPLITS}
  for split in TRANSLATION_SPLITS:
    if split != "train":
      unique[split] = seeded_order(unique[split], lambda row: row[1:])
      sample = [row[0] for row in unique[split][:EVAL_EXAMPLES]]
      statistics[split] = {
          "dropped_same_source": len(by_split[split]) - len(exact[split]),
          "dropped_same_normalised_source": (len(exact[split]) -
                                             len(unique[split])),
          "sample_catalogs": {n: sample.count(n) for n in sorted(set(sample))}}
  names = {split: sorted(n for n, s in assignment.items() if s == split)
           for split in TRANSLATION_SPLITS}
  rows = {split: [row[1:] for row in unique[split]]
          for split in TRANSLATION_SPLITS}
  return rows, names, statistics


# ============================ language modelling =============================
def paragraphs(text: str) -> List[str]:
  """The prose paragraphs (blank-line separated blocks) of a rendered page."""
  result = []
  for block in re.split(r"\n\s*\n", text):
    words = block.split()
    plain = [w for w in words if re.fullmatch(r"[A-Za-z][a-z'-]*[,.;:]?", w)]
    if (len(words) >= MIN_PARAGRAPH_WORDS and
        len(plain) >= MIN_PLAIN_WORD_SHARE * len(words)):
      result.append(" ".join(words))
  return result


_REST_ROLE = re.compile(r":[\w:.-]+:`~?!?([^`<]*?)\s*(?:<[^>]*>)?`")
_REST_LITERAL = re.compile(r"``([^`]+)``")


def strip_rest_markup(text: str) -> str:
  """reStructuredText roles and literals as their plain text
  (":func:`len`" -> "len", "``x``" -> "x"); a reST document's prose then
  passes `paragraphs`' plain-word test as rendered text would."""
  return _REST_LITERAL.sub(r"\1", _REST_ROLE.sub(r"\1", text))


def split_documents(documents: Mapping[str, str]):
  """(paragraphs per split, documents per split) from {name: text}, split
  by document; a paragraph repeated anywhere (boilerplate) is kept once."""
  texts = {name: paragraphs(text) for name, text in sorted(documents.items())}
  assignment = assign_splits({name: len(p) for name, p in texts.items()})
  by_split = {split: [(p,) for name in sorted(texts)
                      if assignment[name] == split for p in texts[name]]
              for split in SPLITS}
  names = {split: sorted(n for n, s in assignment.items()
                         if s == split and texts[n]) for split in SPLITS}
  return dedupe_across_splits(by_split, key=lambda p: p[0]), names


# ============================= classification ================================
def deb822_records(text: str) -> Iterable[Dict[str, str]]:
  """The field dicts of a Debian control file (Packages, Translation-en)."""
  for block in re.split(r"\n\s*\n", text):
    fields, name = {}, None
    for line in block.splitlines():
      if line[:1] in (" ", "\t") and name:
        fields[name] += "\n" + line
      elif ":" in line:
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    if fields:
      yield fields


def description_text(description: str) -> str:
  """A Description field as one line: the synopsis, then the long text
  (continuation lines, " ." paragraph breaks dropped)."""
  lines = [line.strip() for line in description.splitlines()]
  return normalise(" ".join(line for line in lines if line != "."))


def labelled_descriptions(
    packages_texts: Sequence[str],
    translation_texts: Sequence[str] = ()) -> Dict[str, Tuple[str, str, str]]:
  """{package: (source package, section, description)} for SECTIONS.

  Long descriptions come from Translation-en where the Packages files hold
  only the synopsis (matched by Description-md5). The first record of a
  package wins (files in the order given).
  """
  long_text = {}
  for text in translation_texts:
    for record in deb822_records(text):
      if "Description-en" in record:
        long_text.setdefault(record.get("Description-md5"),
                             record["Description-en"])
  result = {}
  for text in packages_texts:
    for record in deb822_records(text):
      package = record.get("Package")
      section = record.get("Section", "").split("/")[-1]
      if not package or package in result or section not in SECTIONS:
        continue
      description = long_text.get(record.get("Description-md5"),
                                   record.get("Description", ""))
      source = record.get("Source", package).split(" ")[0]
      result[package] = (source, section, description_text(description))
  return result


def split_descriptions(described: Mapping[str, Tuple[str, str, str]]):
  """(label, text) examples per split, the same number per section within
  each split (the smallest section's count).

  Split by source package, within each section (so every section reaches
  every split): a source counts in the section of its first package and
  takes all its packages to the split it is assigned.
  """
  home, sizes = {}, {}
  for package in sorted(described):
    source, section, _ = described[package]
    home.setdefault(source, section)
    sizes[source] = sizes.get(source, 0) + 1
  assignment = {}
  for section in SECTIONS:
    assignment.update(assign_splits(
        {source: n for source, n in sizes.items() if home[source] == section}))
  by_split = {split: [(section, text) for _, (source, section, text) in
                      sorted(described.items(), key=lambda i: _name_hash(i[0]))
                      if assignment[source] == split and text]
              for split in SPLITS}
  unique = dedupe_across_splits(by_split, key=lambda example: example[1])
  balanced = {}
  for split, examples in unique.items():
    per_section = min(sum(1 for s, _ in examples if s == section)
                      for section in SECTIONS)
    counts = {section: 0 for section in SECTIONS}
    balanced[split] = []
    for section, text in examples:
      if counts[section] < per_section:
        counts[section] += 1
        balanced[split].append((section, text))
  return balanced


# ================================ inputs =====================================
def render_man_page(path: str) -> str:
  """A manual page as plain text: man-db, 80 columns, no hyphenation or
  justification (so words are whole), overstrikes removed by `col -b`."""
  env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
  rendered = subprocess.run(["man", "--nh", "--nj", "-l", path], env=env,
                            capture_output=True, check=False).stdout
  return subprocess.run(["col", "-b"], input=rendered, capture_output=True,
                        check=True).stdout.decode("utf-8", errors="replace")


def render_all(paths: Sequence[str],
               render: Callable[[str], str] = render_man_page) -> List[str]:
  """`render` of each path, in order, on every CPU."""
  with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
    return list(pool.map(render, paths))


# ================================ output =====================================
@dataclasses.dataclass
class Inputs:
  """What the corpus is built from, already read (see build_corpus.py).

  catalogs: {language: {catalog name: .mo bytes}} of the corpus's
  packages, heldout_catalogs: the same of the held-out packages; documents:
  {name: text}; packages_texts / translation_texts: apt list files as text;
  packages / heldout_packages: "name=version" of each as installed.
  """
  catalogs: Mapping[str, Mapping[str, bytes]]
  documents: Mapping[str, str]
  packages_texts: Sequence[str]
  translation_texts: Sequence[str] = ()
  packages: Sequence[str] = ()
  heldout_catalogs: Mapping[str, Mapping[str, bytes]] = dataclasses.field(
      default_factory=dict)
  heldout_packages: Sequence[str] = ()


def dataset_splits(dataset: str) -> Tuple[str, ...]:
  return TRANSLATION_SPLITS if dataset.startswith("l10n_") else SPLITS


def dataset_files(output_dir: str, dataset: str) -> Dict[str, str]:
  """{split: path} of one dataset's files (TSV, or .txt for the LM)."""
  extension = "txt" if dataset == "lm" else "tsv"
  return {split: os.path.join(output_dir, dataset, f"{split}.{extension}")
          for split in dataset_splits(dataset)}


def _write_lines(path: str, rows: Sequence[Tuple[str, ...]]) -> str:
  """Writes tab-joined rows; returns the file's sha256."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  data = "".join("\t".join(row) + "\n" for row in rows).encode("utf-8")
  with open(path, "wb") as f:
    f.write(data)
  return hashlib.sha256(data).hexdigest()


def build(inputs: Inputs, output_dir: str) -> Dict:
  """Writes every dataset and manifest.json under output_dir; returns the
  manifest (packages, and per split: units, counts, sha256 of its file)."""
  datasets, units, statistics = {}, {}, {}
  for language in LANGUAGES:
    name = f"l10n_en{language}"
    datasets[name], units[name], statistics[name] = split_translations(
        inputs.catalogs[language], inputs.heldout_catalogs.get(language))
  datasets["lm"], units["lm"] = split_documents(inputs.documents)
  datasets["sections"] = split_descriptions(labelled_descriptions(
      inputs.packages_texts, inputs.translation_texts))
  manifest = {"packages": sorted(inputs.packages),
              "heldout_packages": sorted(inputs.heldout_packages),
              "datasets": {}}
  for name, splits in datasets.items():
    files = dataset_files(output_dir, name)
    manifest["datasets"][name] = {split: dict({
        "file": os.path.relpath(files[split], output_dir),
        "examples": len(splits[split]),
        "sha256": _write_lines(files[split], splits[split]),
        "units": units.get(name, {}).get(split, "by source package")},
                                              **statistics.get(name, {}).get(
                                                  split, {}))
                                  for split in dataset_splits(name)}
  write_manifest(manifest, output_dir)
  return manifest


def write_manifest(manifest: Mapping, output_dir: str) -> None:
  with open(os.path.join(output_dir, MANIFEST), "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
    f.write("\n")


def compare_manifests(built: Mapping, recorded: Mapping) -> List[str]:
  """One line per difference of a rebuilt manifest from the recorded one,
  naming what differs and its likely cause; [] when they agree."""
  problems = []
  for key in ("packages", "heldout_packages"):
    changed = sorted(set(built.get(key, ())) ^ set(recorded.get(key, ())))
    if changed:
      problems.append(
          f"{key}: installed versions differ ({', '.join(changed)}): apt "
          "served other versions than the pinned ones (pins in "
          "scripts/build_corpus.py)")
  for name, splits in recorded.get("datasets", {}).items():
    for split, info in splits.items():
      ours = built.get("datasets", {}).get(name, {}).get(split)
      if ours is None:
        problems.append(f"{name}/{split}: not built (the builder no longer "
                        "writes this split)")
      elif ours["units"] != info["units"]:
        units = sorted(set(ours["units"]) ^ set(info["units"])) if isinstance(
            info["units"], list) else [ours["units"]]
        problems.append(
            f"{name}/{split}: other catalogs or documents ({', '.join(units[:5])}"
            f"{', ...' if len(units) > 5 else ''}): a package installed "
            "another version or file list")
      elif ours["sha256"] != info["sha256"]:
        problems.append(
            f"{name}/{split}: same units, other bytes ({ours['examples']} vs "
            f"{info['examples']} examples): a unit's content changed (a "
            "rebuilt package, another man-db/groff rendering or apt list) "
            "or the builder changed")
  vocabulary = recorded.get("vocabulary", {})
  if vocabulary and built.get("vocabulary") != vocabulary:
    problems.append(
        "vocabulary: the SentencePiece model differs (recorded "
        f"{vocabulary}, built {built.get('vocabulary')}): another "
        "sentencepiece version, or a train split above differs")
  return problems


def train_texts(output_dir: str) -> Iterable[str]:
  """Every text field of every train split (the vocabulary's corpus)."""
  for dataset in ("l10n_ende", "l10n_enfr", "lm", "sections"):
    with open(dataset_files(output_dir, dataset)["train"],
              encoding="utf-8") as f:
      for line in f:
        yield from line.rstrip("\n").split("\t")


def load_manifest(output_dir: str) -> Optional[Dict]:
  try:
    with open(os.path.join(output_dir, MANIFEST)) as f:
      return json.load(f)
  except OSError:
    return None
