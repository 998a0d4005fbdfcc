"""Placeholder accuracy: does a translated message keep the source's format
placeholders? A message whose translation drops, adds or changes one
crashes (or misprints in) the program that formats it.

A t5 metric function needs the source, which seqio's metric interface does
not pass: `keep_source` is the task's postprocessor; it returns each target
as a `SourcedText`, the target string that also carries its example's
input, so string metrics (BLEU) read it unchanged and
`placeholder_accuracy` reads the source from it.
"""
import collections
import re
from typing import Counter, Mapping, Optional, Sequence

# printf conversions (with an optional `N$` position, flags other than
# space, width, precision, length), `%(name)s`, gettext's `%<PRIu64>`, and
# `{0}` / `{name}` / `{}` format fields. `%%` is a literal percent sign.
PLACEHOLDER = re.compile(
    r"%%"
    r"|%(?:\d+\$)?[-+#0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?"
    r"(?:hh|h|ll|l|L|q|j|z|Z|t)?[diouxXeEfFgGaAcspnmC]"
    r"|%\([^)\s]+\)[-+#0]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]"
    r"|%<PRI\w+>"
    r"|\{\w*\}")
_POSITION = re.compile(r"^%\d+\$")


def placeholders(text: str) -> Counter[str]:
  """The multiset of `text`'s placeholders; positions (`%2$s`) dropped, so
  a translation may reorder its arguments."""
  return collections.Counter(
      _POSITION.sub("%", match) for match in PLACEHOLDER.findall(text)
      if match != "%%")


class SourcedText(str):
  """A target string that also carries the source it translates."""

  def __new__(cls, text: str, source: str):
    result = super().__new__(cls, text)
    result.source = source
    return result


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else value


def keep_source(output, example: Optional[Mapping] = None,
                is_target: bool = False):
  """seqio postprocessor: targets as `SourcedText` (with the example's
  "inputs_pretokenized"); predictions unchanged."""
  if not is_target:
    return output
  return SourcedText(_text(output), _text(example["inputs_pretokenized"]))


def placeholder_accuracy(targets: Sequence[SourcedText],
                         predictions: Sequence[str]) -> Mapping[str, float]:
  """t5 metric: % of predictions whose placeholders equal their source's as
  a multiset, over the examples whose source has any
  ("placeholder_accuracy") and over all ("placeholder_accuracy_all")."""
  if any(not isinstance(t, SourcedText) for t in targets):
    raise ValueError("placeholder_accuracy needs the task's postprocessor "
                     "to be tasks.placeholders.keep_source")
  kept = [(bool(placeholders(t.source)),
           placeholders(t.source) == placeholders(_text(p)))
          for t, p in zip(targets, predictions)]
  needed = [same for has, same in kept if has]
  return {"placeholder_accuracy":
              100.0 * sum(needed) / len(needed) if needed else 100.0,
          "placeholder_accuracy_all":
              100.0 * sum(same for _, same in kept) / max(len(kept), 1)}
