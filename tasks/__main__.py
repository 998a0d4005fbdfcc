"""Command line for the task registry.

  python -m tasks list                          # tasks and mixtures
  python -m tasks show NAME [-n 3] [--split validation]
"""
import argparse
import sys

import seqio

import tasks  # pylint: disable=unused-import  (registers everything)
from tasks.errors import TaskConfigError

MAX_SHOWN_IDS = 24
MAX_SHOWN_CHARS = 200


def _vocabulary_name(task: seqio.Task) -> str:
  return type(task.output_features["targets"].vocabulary).__name__


def _source_name(task: seqio.Task) -> str:
  if isinstance(task.source, seqio.TfdsDataSource):
    return "tfds:" + task.source.tfds_dataset.name
  return type(task.source).__name__


def list_registry(out=None) -> None:
  out = out or sys.stdout
  names = sorted(seqio.TaskRegistry.names())
  print(f"Tasks ({len(names)}):", file=out)
  for name in names:
    task = seqio.get_mixture_or_task(name)
    features = "+".join(sorted(task.output_features))
    print(f"  {name:40s} {features:15s} {_vocabulary_name(task):28s} "
          f"{_source_name(task)}", file=out)
  mixtures = sorted(seqio.MixtureRegistry.names())
  print(f"Mixtures ({len(mixtures)}):", file=out)
  for name in mixtures:
    mixture = seqio.get_mixture_or_task(name)
    print(f"  {name:40s} {len(mixture.tasks)} tasks", file=out)


def _shorten(value) -> str:
  if isinstance(value, bytes):
    try:
      value = value.decode("utf-8")
    except UnicodeDecodeError:
      return f"<{len(value)} bytes> {value[:MAX_SHOWN_CHARS // 4]!r}"
  text = str(value)
  if len(text) <= MAX_SHOWN_CHARS:
    return text
  return text[:MAX_SHOWN_CHARS] + "..."


def show(name: str, num_examples: int = 3, split: str = "validation",
         out=None) -> None:
  """Prints the first preprocessed examples of a task or mixture."""
  out = out or sys.stdout
  task = seqio.get_mixture_or_task(name)
  if split not in task.splits:
    raise TaskConfigError(f"{name} has no split {split!r}; it has "
                          f"{', '.join(task.splits)} (use --split)")
  dataset = task.get_dataset(None, split=split, shuffle=False,
                             try_in_mem_cache=False)
  for i, example in enumerate(dataset.take(num_examples).as_numpy_iterator()):
    print(f"--- {name} [{split}] example {i}", file=out)
    for key in sorted(example):
      value = example[key]
      if getattr(value, "ndim", 0) == 1 and value.dtype.kind == "i":
        ids = " ".join(str(x) for x in value[:MAX_SHOWN_IDS])
        more = " ..." if len(value) > MAX_SHOWN_IDS else ""
        print(f"  {key} ({len(value)} ids): {ids}{more}", file=out)
      else:
        print(f"  {key}: {_shorten(value)}", file=out)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m tasks",
                                   description=__doc__.split("\n")[0])
  commands = parser.add_subparsers(dest="command", required=True)
  commands.add_parser("list", help="print registered tasks and mixtures")
  show_parser = commands.add_parser("show", help="print preprocessed examples")
  show_parser.add_argument("name")
  show_parser.add_argument("-n", "--num_examples", type=int, default=3)
  show_parser.add_argument("--split", default="validation")
  args = parser.parse_args(argv)
  try:
    if args.command == "list":
      list_registry()
    else:
      show(args.name, args.num_examples, args.split)
  except TaskConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except ValueError as e:  # seqio's word for an unknown name.
    print(f"error: {str(e).splitlines()[0]} (see `python -m tasks list`)",
          file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
