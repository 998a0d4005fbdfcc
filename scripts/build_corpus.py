"""Builds the `debian` corpus (data/debian/) from text installed with Debian.

  python scripts/build_corpus.py                # as root: installs the pins
  python scripts/build_corpus.py --no_install   # from what is installed
  python scripts/build_corpus.py --check        # rebuild, compare with the
                                                # committed manifest

Run once after scripts/setup.sh. As root it runs `apt-get update` (with the
English package descriptions) and `apt-get install` of the pinned PACKAGES
and HELDOUT_PACKAGES (name=version), then reads only those packages' files
(`dpkg -L`): their gettext catalogs, manual pages and python3.11-doc's
sources, and the apt lists; writes the datasets and manifest.json
(tasks/debian_corpus.py: versions, which catalogs and documents went to
which split, sha256 per split file) and trains the SentencePiece vocabulary
on the train splits (the sha256 of its pieces and scores in the manifest too).

The committed manifest is tasks/debian_manifest.json (`--record` rewrites
it). `--check` builds into a temporary folder and prints one line per split
that differs from it, with the likely cause (exit 1), or "ok".
"""
import argparse
import glob
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

from tasks import debian_corpus  # noqa: E402  pylint: disable=g-import-not-at-top
from tasks import sentencepiece_training  # noqa: E402  pylint: disable=g-import-not-at-top
from tasks.errors import TaskConfigError  # noqa: E402  pylint: disable=g-import-not-at-top

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
DEFAULT_OUTPUT = os.path.join(REPO, "data", "debian")
RECORDED_MANIFEST = os.path.join(REPO, "tasks", "debian_manifest.json")
# Packages (Debian 12 bookworm main) whose de/fr catalogs, manual pages and
# documentation the corpus is built from, pinned to the versions apt served
# on 2026-12-04 (the 800-step results of issue 14 recorded none; their
# corpus also read the base image's catalogs, so it differs from this one).
PACKAGES = (
    "aptitude=0.8.13-5", "bison=2:3.8.2+dfsg-1+b1", "cpio=2.13+dfsg-7.1",
    "cryptsetup-bin=2:2.6.1-4~deb12u2", "debconf-i18n=1.5.82",
    "e2fsprogs=1.47.0-2+b2", "enscript=1.6.5.90-3+b1", "gawk=1:5.2.1-2",
    "gcc-12-locales=12.2.0-14+deb12u1", "gdb=13.1-3", "gettext=0.21-12",
    "gnutls-bin=3.7.9-2+deb12u7", "libgtk-3-common=3.24.38-2~deb12u3",
    "lynx=2.9.0dev.12-1", "mailutils=1:3.15-4", "manpages=6.03-2",
    "manpages-dev=6.03-2", "mc=3:4.8.29-2", "mutt=2.2.12-0.1~deb12u2",
    "nano=7.2-1+deb12u1", "parted=3.5-3+deb12u1", "procps=2:4.0.2-3",
    "psmisc=23.6-1", "python3-doc=3.11.2-1",
    "python3.11-doc=3.11.2-6+deb12u9", "recode=3.6-25",
    "sharutils=1:4.15.2-9", "subversion=1.14.2-4+deb12u1",
    "sudo=1.9.13p3-1+deb12u4", "tar=1.34+dfsg-1.2+deb12u1", "texinfo=6.8-6+b1",
    "util-linux-locales=2.38.1-5+deb12u3", "wdiff=1.2.2-5",
    "wget=1.21.3-1+deb12u1", "xfsprogs=6.1.0-1")
# The heldout test split: every de/fr catalog of these packages, by rule
# the bookworm command-line tools and libraries that (1) ship both de and fr
# catalogs, (2) are not in PACKAGES and (3) are not installed in the
# python:3.11-bookworm base image (whose catalogs earlier corpora read),
# taken whole, whatever their size; a catalog named like one of PACKAGES'
# is left out (tasks/debian_corpus.split_translations).
HELDOUT_PACKAGES = (
    "acl=2.3.1-3", "alsa-utils=1.2.8-1", "aspell=0.60.8-4+b1", "attr=1:2.5.1-4",
    "dialog=1.3-20230209-1", "dos2unix=7.4.3-1", "indent=2.2.12-4+deb12u3",
    "kbd=2.5.1-1+b1", "lftp=4.9.2-2+b1", "libextractor3=1:1.11-7",
    "libgphoto2-l10n=2.5.30-1", "libsane-common=1.2.1-2", "m4=1.4.19-3",
    "pv=1.6.20-1", "quota=4.06-1+b2", "sysstat=12.6.1-1")
# English manual page sections of prose (commands, file formats,
# overviews, administration).
MAN_SECTIONS = ("1", "5", "7", "8")
APT_HELPER = "/usr/lib/apt/apt-helper"


def name_of(pin):
  return pin.split("=", 1)[0]


def run(command):
  try:
    subprocess.run(command, check=True,
                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
  except subprocess.CalledProcessError as e:
    raise TaskConfigError(
        f"`{' '.join(command[:2])}` failed (exit {e.returncode}, output "
        "above): fix apt's sources or network (a pinned version apt no "
        "longer serves: `apt-cache policy NAME`), or install the packages "
        "yourself and pass --no_install") from None


def install(packages):
  """apt-get update (with Translation-en) and install of the `packages`
  pins ("name=version")."""
  if not shutil.which("apt-get"):
    raise TaskConfigError(
        "apt-get not found: build the corpus on Debian/Ubuntu, or install "
        f"the packages yourself and pass --no_install ({' '.join(packages)})")
  if os.geteuid() != 0:
    raise TaskConfigError(
        "installing the corpus packages needs root: run this script with "
        "sudo, or install them yourself and pass --no_install")
  run(["apt-get", "update", "-q", "-o", "Acquire::Languages=en"])
  run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
       "--allow-downgrades", *packages])


def installed_versions(packages):
  """"name=version" of each installed package of the `packages` pins."""
  result = subprocess.run(
      ["dpkg-query", "-W", "-f=${Package}=${Version}\n",
       *map(name_of, packages)], capture_output=True, text=True, check=False)
  return sorted(result.stdout.split())


def require_pins(packages):
  """The pins, after checking each is what is installed."""
  installed = {name_of(p): p for p in installed_versions(packages)}
  for pin in packages:
    if installed.get(name_of(pin)) != pin:
      raise TaskConfigError(
          f"{pin} is not installed (found {installed.get(name_of(pin))}): "
          f"run without --no_install as root, or `apt-get install {pin}`")
  return sorted(packages)


def dpkg_files(packages):
  """The files the `packages` pins installed (`dpkg -L`), sorted."""
  files = set()
  for pin in packages:
    listing = subprocess.run(["dpkg", "-L", name_of(pin)],
                             capture_output=True, text=True, check=False)
    files.update(listing.stdout.split("\n"))
  return sorted(f for f in files if f)


def read_catalogs(files, locale_dir, language):
  """{catalog name: .mo bytes} of one language among `files`."""
  folder = os.path.join(locale_dir, language, "LC_MESSAGES")
  catalogs = {}
  for path in files:
    if os.path.dirname(path) == folder and path.endswith(".mo"):
      with open(path, "rb") as f:
        catalogs[os.path.basename(path)[:-len(".mo")]] = f.read()
  return catalogs


def man_pages(files, man_dir):
  """Paths of the English pages among `files` to render: no aliases (`.so`
  redirects, symlinks)."""
  folders = {os.path.join(man_dir, "man" + s) for s in MAN_SECTIONS}
  paths = []
  for path in files:
    if (os.path.dirname(path) not in folders or os.path.islink(path) or
        not os.path.isfile(path)):
      continue
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
      if f.read(4) == b".so ":
        continue
    paths.append(path)
  return paths


def read_documents(files, man_dir, python_doc_dir):
  """{document name: plain text}: the manual pages and python3-doc's reST
  among `files`."""
  pages = man_pages(files, man_dir)
  documents = {"man/" + os.path.relpath(p, man_dir): text for p, text in
               zip(pages, debian_corpus.render_all(pages))}
  for path in files:
    if not (path.startswith(os.path.join(python_doc_dir, "")) and
            path.endswith(".txt") and os.path.isfile(path)):
      continue
    with open(path, encoding="utf-8", errors="replace") as f:
      documents["python3-doc/" + os.path.relpath(path, python_doc_dir)] = (
          debian_corpus.strip_rest_markup(f.read()))
  return documents


def read_apt_list(path):
  """An apt list file as text; compressed ones through apt-helper."""
  if path.endswith((".lz4", ".gz", ".xz", ".zst", ".bz2", ".lzma")):
    return subprocess.run([APT_HELPER, "cat-file", path], capture_output=True,
                          check=True).stdout.decode("utf-8", errors="replace")
  with open(path, encoding="utf-8", errors="replace") as f:
    return f.read()


def apt_lists(lists_dir, kind):
  """Texts of the `kind` (Packages, Translation-en) list files, sorted."""
  return [read_apt_list(p) for p in sorted(glob.glob(
      os.path.join(lists_dir, "*_%s*" % kind))) if not p.endswith(".diff")]


def parse_args(argv):
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--output_dir", default=DEFAULT_OUTPUT)
  parser.add_argument("--no_install", action="store_true",
                      help="use what is installed; no apt-get")
  parser.add_argument("--check", action="store_true",
                      help="build into a temporary folder and compare with "
                      "--manifest")
  parser.add_argument("--record", action="store_true",
                      help="also write the build's manifest to --manifest")
  parser.add_argument("--manifest", default=RECORDED_MANIFEST,
                      help="the committed manifest (default: %(default)s)")
  parser.add_argument("--locale_dir", default="/usr/share/locale")
  parser.add_argument("--man_dir", default="/usr/share/man")
  parser.add_argument("--python_doc_dir",
                      default="/usr/share/doc/python3.11/html/_sources")
  parser.add_argument("--apt_lists_dir", default="/var/lib/apt/lists")
  parser.add_argument("--vocab_size", type=int, default=8000,
                      help="SentencePiece vocabulary size")
  return parser.parse_args(argv)


def build(args, output_dir):
  """Builds the corpus and its vocabulary into output_dir; the manifest."""
  if not args.no_install:
    install(PACKAGES + HELDOUT_PACKAGES)
  packages, heldout = require_pins(PACKAGES), require_pins(HELDOUT_PACKAGES)
  files, heldout_files = dpkg_files(packages), dpkg_files(heldout)
  inputs = debian_corpus.Inputs(
      catalogs={language: read_catalogs(files, args.locale_dir, language)
                for language in debian_corpus.LANGUAGES},
      heldout_catalogs={
          language: read_catalogs(heldout_files, args.locale_dir, language)
          for language in debian_corpus.LANGUAGES},
      documents=read_documents(files, args.man_dir, args.python_doc_dir),
      packages_texts=apt_lists(args.apt_lists_dir, "Packages"),
      translation_texts=apt_lists(args.apt_lists_dir, "Translation-en"),
      packages=packages, heldout_packages=heldout)
  manifest = debian_corpus.build(inputs, output_dir)
  model = sentencepiece_training.train(
      debian_corpus.train_texts(output_dir),
      os.path.join(output_dir, debian_corpus.SPM_PREFIX),
      vocab_size=args.vocab_size)
  manifest["vocabulary"] = {
      "file": os.path.relpath(model, output_dir),
      "sha256": sentencepiece_training.vocabulary_sha256(model),
      "sentencepiece": sentencepiece_training.spm.__version__}
  debian_corpus.write_manifest(manifest, output_dir)
  return manifest


def check(args):
  """Exit status of --check: 0 when a fresh build matches --manifest."""
  try:
    with open(args.manifest) as f:
      recorded = json.load(f)
  except (OSError, ValueError) as e:
    raise TaskConfigError(
        f"cannot read the recorded manifest {args.manifest} ({e}): pass "
        "--manifest=PATH, or record one with --record") from None
  with tempfile.TemporaryDirectory() as output_dir:
    problems = debian_corpus.compare_manifests(build(args, output_dir),
                                               recorded)
  for problem in problems:
    print("mismatch: " + problem)
  if not problems:
    print("ok: the build matches %s" % args.manifest)
  return 1 if problems else 0


def main(argv=None):
  args = parse_args(argv)
  try:
    if args.check:
      return check(args)
    manifest = build(args, args.output_dir)
  except TaskConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if args.record:
    shutil.copyfile(os.path.join(args.output_dir, debian_corpus.MANIFEST),
                    args.manifest)
  for name, splits in manifest["datasets"].items():
    print(name, " ".join("%s=%d" % (split, info["examples"])
                         for split, info in splits.items()))
  print("vocabulary:", manifest["vocabulary"]["file"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
