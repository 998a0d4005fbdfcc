"""Builds the `debian` corpus (data/debian/) from text installed with Debian.

  python scripts/build_corpus.py                # as root: installs PACKAGES
  python scripts/build_corpus.py --no_install   # from what is installed

Run once after scripts/setup.sh. As root it runs `apt-get update` (with the
English package descriptions) and `apt-get install` of the pinned PACKAGES,
then reads their gettext catalogs, manual pages, python3-doc and the apt
lists, writes the datasets and manifest.json (tasks/debian_corpus.py: which
catalogs and documents went to which split, sha256 per split file), and
trains the SentencePiece vocabulary on the train splits. The same package
list gives the same split files (sha256 in the manifest).
"""
import argparse
import glob
import gzip
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

from tasks import debian_corpus  # noqa: E402  pylint: disable=g-import-not-at-top
from tasks import sentencepiece_training  # noqa: E402  pylint: disable=g-import-not-at-top
from tasks.errors import TaskConfigError  # noqa: E402  pylint: disable=g-import-not-at-top

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
DEFAULT_OUTPUT = os.path.join(REPO, "data", "debian")
# Packages (Debian 12 bookworm main) whose de/fr catalogs, manual pages and
# documentation the corpus is built from, besides what the image already has.
PACKAGES = (
    "aptitude", "bison", "cpio", "cryptsetup-bin", "debconf-i18n", "e2fsprogs",
    "enscript", "gawk", "gcc-12-locales", "gdb", "gettext", "gnutls-bin",
    "libgtk-3-common", "lynx", "mailutils", "manpages", "manpages-dev", "mc",
    "mutt", "nano", "parted", "procps", "psmisc", "python3-doc", "recode",
    "sharutils", "subversion", "sudo", "tar", "texinfo", "util-linux-locales",
    "wdiff", "wget", "xfsprogs")
# English manual page sections of prose (commands, file formats,
# overviews, administration).
MAN_SECTIONS = ("1", "5", "7", "8")
# Google Cloud CLI's 16,000 generated near-identical command pages would be
# most of the corpus; they are not Debian packages' documentation.
EXCLUDED_MAN_PREFIXES = ("gcloud",)
APT_HELPER = "/usr/lib/apt/apt-helper"


def run(command):
  try:
    subprocess.run(command, check=True,
                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
  except subprocess.CalledProcessError as e:
    raise TaskConfigError(
        f"`{' '.join(command[:2])}` failed (exit {e.returncode}, output "
        "above): fix apt's sources or network, or install the packages "
        "yourself and pass --no_install") from None


def install(packages):
  """apt-get update (with Translation-en) and install of `packages`."""
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
       *packages])


def installed_versions(packages):
  """"name=version" of each installed package of `packages`."""
  result = subprocess.run(
      ["dpkg-query", "-W", "-f=${Package}=${Version}\n", *packages],
      capture_output=True, text=True, check=False)
  return sorted(result.stdout.split())


def read_catalogs(locale_dir, language):
  """{catalog name: .mo bytes} of one language."""
  catalogs = {}
  for path in sorted(glob.glob(os.path.join(locale_dir, language,
                                            "LC_MESSAGES", "*.mo"))):
    with open(path, "rb") as f:
      catalogs[os.path.basename(path)[:-len(".mo")]] = f.read()
  return catalogs


def man_pages(man_dir):
  """Paths of the English pages to render: no aliases (`.so` redirects,
  symlinks), no EXCLUDED_MAN_PREFIXES."""
  paths = []
  for section in MAN_SECTIONS:
    for path in sorted(glob.glob(os.path.join(man_dir, "man" + section, "*"))):
      if (os.path.islink(path) or not os.path.isfile(path) or
          os.path.basename(path).startswith(EXCLUDED_MAN_PREFIXES)):
        continue
      opener = gzip.open if path.endswith(".gz") else open
      with opener(path, "rb") as f:
        if f.read(4) == b".so ":
          continue
      paths.append(path)
  return paths


def read_documents(man_dir, python_doc_dir):
  """{document name: plain text}: manual pages and python3-doc's reST."""
  pages = man_pages(man_dir)
  documents = {"man/" + os.path.relpath(p, man_dir): text for p, text in
               zip(pages, debian_corpus.render_all(pages))}
  for path in sorted(glob.glob(os.path.join(python_doc_dir, "**", "*.txt"),
                               recursive=True)):
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
  parser.add_argument("--locale_dir", default="/usr/share/locale")
  parser.add_argument("--man_dir", default="/usr/share/man")
  parser.add_argument("--python_doc_dir",
                      default="/usr/share/doc/python3.11/html/_sources")
  parser.add_argument("--apt_lists_dir", default="/var/lib/apt/lists")
  parser.add_argument("--vocab_size", type=int, default=8000,
                      help="SentencePiece vocabulary size")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  try:
    if not args.no_install:
      install(PACKAGES)
    inputs = debian_corpus.Inputs(
        catalogs={language: read_catalogs(args.locale_dir, language)
                  for language in debian_corpus.LANGUAGES},
        documents=read_documents(args.man_dir, args.python_doc_dir),
        packages_texts=apt_lists(args.apt_lists_dir, "Packages"),
        translation_texts=apt_lists(args.apt_lists_dir, "Translation-en"),
        packages=installed_versions(PACKAGES))
    manifest = debian_corpus.build(inputs, args.output_dir)
  except TaskConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  model = sentencepiece_training.train(
      debian_corpus.train_texts(args.output_dir),
      os.path.join(args.output_dir, debian_corpus.SPM_PREFIX),
      vocab_size=args.vocab_size)
  for name, splits in manifest["datasets"].items():
    print(name, " ".join("%s=%d" % (split, info["examples"])
                         for split, info in splits.items()))
  print("vocabulary:", model)
  return 0


if __name__ == "__main__":
  sys.exit(main())
