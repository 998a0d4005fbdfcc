"""Trains a SentencePiece model on a registered task's text.

  python scripts/train_sentencepiece.py --task wmt14_ende \
      --output /data/spm/wmt14_ende --vocab_size 32000
  export MTF_SYNTH_SPM_MODEL=/data/spm/wmt14_ende.model

The model follows T5's id convention (0 PAD, 1 EOS, 2 UNK) and is then used by
every SentencePiece task variant (see tasks/vocabularies.py).
"""
import argparse
import sys

import tasks  # noqa: F401  pylint: disable=unused-import  (registers tasks)
from tasks import sentencepiece_training
from tasks.errors import TaskConfigError


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--task", required=True, help="registered task name")
  parser.add_argument("--output", required=True,
                      help="model prefix; writes PREFIX.model and PREFIX.vocab")
  parser.add_argument("--split", default="train")
  parser.add_argument("--vocab_size", type=int, default=32000)
  parser.add_argument("--max_examples", type=int, default=100_000)
  parser.add_argument("--model_type", default="unigram",
                      choices=["unigram", "bpe", "char", "word"])
  args = parser.parse_args(argv)
  try:
    path = sentencepiece_training.train(
        sentencepiece_training.task_texts(args.task, args.split,
                                          args.max_examples),
        args.output, args.vocab_size, args.model_type)
  except TaskConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(path)
  return 0


if __name__ == "__main__":
  sys.exit(main())
