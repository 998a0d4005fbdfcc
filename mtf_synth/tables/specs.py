"""The tables as data: rows (models), columns (tasks) per scale, and the
papers' published numbers.

One table = rows (a model, one gin file each under gin/tables/TABLE/) times
columns (a task + base model + schedule, gin/tables/TABLE/tasks/COLUMN.gin at
paper scale, gin/tables/SCALE/TASK.gin at mini scale (generated tasks) and
small scale (the debian corpus, real text)).
"""

import dataclasses
from typing import Dict, Tuple

SCALES = ("mini", "small", "paper")


@dataclasses.dataclass(frozen=True)
class Column:
  """A task the rows are trained and scored on.

  name: id (run folder, gin file name); label: header text;
  gin: gin files of the run (task, base model, schedule), first;
  evaluation: "decode" (utils.run mode eval), "perplexity" or "train";
  metrics: the metric keys shown (see `metric_value`), first is the primary;
  split: the evaluation split; pretrain: gin files of a pre-training run
  shared by the row's columns (its checkpoint initialises this run).
  """
  name: str
  label: str
  gin: Tuple[str, ...]
  evaluation: str
  metrics: Tuple[str, ...]
  split: str = "validation"
  pretrain: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Table:
  name: str
  title: str
  rows: Tuple[Tuple[str, str], ...]        # (row id, label)
  paper: Tuple[Column, ...]                # columns at paper scale
  mini: Tuple[Column, ...]                 # columns at mini scale
  small: Tuple[Column, ...] = ()           # columns at small scale
  # Published numbers: {paper column name: {metric: {row id: value}}}.
  published: Dict[str, Dict[str, Dict[str, float]]] = dataclasses.field(
      default_factory=dict)
  higher_is_better: Dict[str, bool] = dataclasses.field(default_factory=dict)

  def columns(self, scale):
    return getattr(self, scale)

  def row_gin(self, row):
    return "tables/%s/%s.gin" % (self.name, row)


def paper_column(table, name, label, evaluation, metrics, **kwargs):
  return Column(name, label, ("tables/%s/tasks/%s.gin" % (table, name),),
                evaluation, metrics, **kwargs)


def scale_column(scale, name, model, label, evaluation, metrics, **kwargs):
  """A stand-in task for a paper column, on `model`'s stack, sized by
  gin/tables/SCALE/NAME.gin."""
  return Column(name, label, ("models/%s.gin" % model,
                              "tables/%s/%s.gin" % (scale, name)),
                evaluation, metrics, **kwargs)


def mini_column(name, model, label, evaluation, metrics, **kwargs):
  """A generated task standing in for a paper column."""
  return scale_column("mini", name, model, label, evaluation, metrics,
                      **kwargs)


SEQ2SEQ = ("sequence_accuracy", "mean_edit")
MINI_DEMO = mini_column("demo", "transformer_base", "demo (reverse/sort)",
                        "decode", SEQ2SEQ + ("exact_match:reverse",
                                             "exact_match:sort"))
MINI_LM = mini_column("lm", "lm_base", "generated LM", "perplexity",
                      ("perplexity",))
MINI_COPY = mini_column("copy", "transformer_base", "copy", "decode", SEQ2SEQ)
MINI_RECALL = mini_column("recall", "transformer_base", "key-value recall",
                          "decode", ("accuracy",))
MINI_T5_RECALL = mini_column("recall", "t5_base", "key-value recall",
                             "decode", ("accuracy",))
MINI_LISTOPS = mini_column("listops", "encoder_classifier", "ListOps (small)",
                           "decode", ("accuracy",))
MINI_C4 = mini_column("demo_train", "t5_base", "demo (train loss, steps/s)",
                      "train", ("loss", "steps_per_sec"))


def mini_sparsity(model):
  return tuple(mini_column("sparsity_%dof64" % k, model, "sparsity %d/64" % k,
                           "decode", ("accuracy",)) for k in (2, 8, 32))


SYNTH_ROWS = (("transformer", "Transformer"), ("random", "Synthesizer (R)"),
              ("fixed_random", "Synthesizer (Fix)"),
              ("factorized_random", "Synthesizer (FR)"),
              ("dense", "Synthesizer (D)"),
              ("factorized_dense", "Synthesizer (FD)"),
              ("random_dense", "Synthesizer (R+D)"),
              ("random_vanilla", "Synthesizer (R+V)"),
              ("dense_vanilla", "Synthesizer (D+V)"))
KERNEL_ROWS = (("rff", "RFF"), ("gmm_rks", "GMM-RKS"), ("gmm_prf", "GMM-PRF"),
               ("fastfood_rks", "FastFood-RKS"),
               ("fastfood_prf", "FastFood-PRF"),
               ("generative_rks", "Generative-RKS"),
               ("generative_prf", "Generative-PRF"))


def _by_row(rows, values):
  """{row id: value} from parallel sequences, None (blank) dropped."""
  return {r: v for r, v in zip(rows, values) if v is not None}


_T1 = ("transformer", "random", "fixed_random", "random_dense",
       "dense", "random_vanilla")
_C4 = ("transformer", "dynamic_conv", "lightweight_conv", "dense",
       "dense_vanilla", "factorized_random", "random", "random_vanilla")
_LRA = ("transformer", "synthesizer", "performer", "linformer")
_LRA_PUBLISHED = ((36.37, 64.27, 57.46, 42.44, 71.40),
                  (36.99, 61.68, 54.67, 41.61, 69.45),
                  (18.01, 65.40, 53.82, 42.77, 77.05),
                  (35.70, 53.94, 52.27, 38.56, 76.34))
_LRA_TASKS = (("lra_listops", "ListOps"), ("lra_text", "Text"),
              ("lra_retrieval", "Retrieval"), ("lra_image", "Image"),
              ("lra_pathfinder", "Pathfinder"))

TABLES = {t.name: t for t in (
    Table(
        "synth_mt_lm",
        "Synthesizer: WMT'14 BLEU and LM1B perplexity",
        SYNTH_ROWS,
        paper=(paper_column("synth_mt_lm", "wmt14_ende", "WMT'14 En-De",
                            "decode", ("bleu",), split="test"),
               paper_column("synth_mt_lm", "wmt14_enfr", "WMT'14 En-Fr",
                            "decode", ("bleu",), split="test"),
               paper_column("synth_mt_lm", "lm1b", "LM1B", "perplexity",
                            ("perplexity",), split="test")),
        mini=(MINI_DEMO, MINI_LM),
        small=(scale_column("small", "debian_l10n_ende", "transformer_base",
                            "Debian l10n En-De", "decode",
                            ("bleu", "placeholder_accuracy"), split="test"),
               scale_column("small", "debian_l10n_enfr", "transformer_base",
                            "Debian l10n En-Fr", "decode",
                            ("bleu", "placeholder_accuracy"), split="test"),
               scale_column("small", "debian_lm", "lm_base",
                            "Debian docs LM", "perplexity", ("perplexity",),
                            split="test")),
        published={
            "wmt14_ende": {"bleu": _by_row(_T1, (27.67, 27.27, 23.89, 27.68,
                                                 27.43, 28.47))},
            "wmt14_enfr": {"bleu": _by_row(_T1, (41.57, 41.12, 38.31, 41.57,
                                                 41.39, 41.85))},
            "lm1b": {"perplexity": {"transformer": 38.21, "random": 40.60,
                                    "dense": 42.40, "random_vanilla": 40.05}},
        }),
    Table(
        "synth_summ_dialog",
        "Synthesizer: CNN/DailyMail summarization and PersonaChat dialogue",
        (("transformer", "Transformer"), ("random", "Synthesizer (R)"),
         ("dense", "Synthesizer (D)"), ("dense_vanilla", "Synthesizer (D+V)"),
         ("random_vanilla", "Synthesizer (R+V)")),
        paper=(paper_column("synth_summ_dialog", "cnn_dailymail",
                            "CNN/DailyMail", "decode",
                            ("rouge1", "rouge2", "rougeLsum"), split="test"),
               paper_column("synth_summ_dialog", "personachat", "PersonaChat",
                            "decode", ("bleu", "bleu1", "rouge1", "rougeL"))),
        mini=(MINI_COPY, MINI_RECALL)),
    Table(
        "synth_glue",
        "Synthesizer: GLUE and SuperGLUE with T5-base",
        (("t5_base", "T5 (base)"), ("random_vanilla", "Synthesizer (R+V)"),
         ("dense_vanilla", "Synthesizer (D+V)")),
        paper=tuple(
            paper_column("synth_glue", name, label, "decode", ("average",),
                         pretrain=("tables/synth_glue/tasks/c4_pretrain.gin",))
            for name, label in (("glue", "GLUE"),
                                ("super_glue", "SuperGLUE"))),
        mini=(MINI_T5_RECALL, mini_sparsity("t5_base")[1])),
    Table(
        "synth_c4",
        "Synthesizer vs Dynamic Convolutions: C4 span corruption "
        "(steps/s, final loss)",
        (("transformer", "Transformer"), ("dynamic_conv", "Dynamic Conv"),
         ("lightweight_conv", "Lightweight Conv"),
         ("dense", "Synthesizer (D)"), ("dense_vanilla", "Synthesizer (D+V)"),
         ("factorized_random", "Synthesizer (FR)"),
         ("random", "Synthesizer (R)"),
         ("random_vanilla", "Synthesizer (R+V)")),
        paper=(paper_column("synth_c4", "c4", "C4", "train",
                            ("loss", "steps_per_sec")),),
        mini=(MINI_C4,),
        published={"c4": {
            "steps_per_sec": _by_row(_C4, (3.90, 2.65, 4.05, 3.61, 3.34,
                                           4.10, 4.26, 3.79)),
            "loss": _by_row(_C4, (1.865, 2.038, 1.990, 1.965, 1.832, 1.964,
                                  1.972, 1.849))}}),
    Table(
        "synth_linformer",
        "Synthesizer vs Linformer: encoder-only AG News and IMDb",
        (("transformer", "Transformer"), ("linformer", "Linformer"),
         ("random", "Synthesizer (R)"), ("dense", "Synthesizer (D)"),
         ("random_vanilla", "Synthesizer (R+V)")),
        paper=tuple(paper_column("synth_linformer", name, label, "decode",
                                 ("accuracy",), split="test")
                    for name, label in (("ag_news", "AG News"),
                                        ("imdb", "IMDb"))),
        mini=tuple(dataclasses.replace(c, gin=c.gin + (
            "tables/mini/unpacked.gin",)) for c in (
                mini_sparsity("encoder_classifier")[1], MINI_LISTOPS)),
        small=(scale_column("small", "debian_sections",
                            "encoder_classifier", "Debian package sections",
                            "decode", ("accuracy",), split="test"),)),
    Table(
        "synth_ablations",
        "Synthesizer ablations: heads, factorization sizes, fixed vs "
        "trainable (WMT'14 En-De)",
        (("random_heads_2", "R, 2 heads"), ("random_heads_4", "R, 4 heads"),
         ("random", "R, the model's heads (8; mini: 4)"),
         ("random_heads_16", "R, 16 heads"),
         ("fixed_random", "Fix (R not trained)"),
         ("factorized_random_rank_4", "FR, k = 4"),
         ("factorized_random", "FR, k = 8"),
         ("factorized_random_rank_32", "FR, k = 32"),
         ("factorized_dense_a_2", "FD, a = 2, b = n/2"),
         ("factorized_dense", "FD, a ~ b ~ sqrt(n)")),
        paper=(paper_column("synth_ablations", "wmt14_ende", "WMT'14 En-De",
                            "decode", ("bleu",), split="test"),),
        mini=(MINI_DEMO,)),
    Table(
        "kernel_lra",
        "Learning the Transformer Kernel: Long Range Arena accuracy",
        (("transformer", "Transformer (softmax)"),
         ("synthesizer", "Synthesizer"), ("performer", "Performer"),
         ("linformer", "Linformer")) + KERNEL_ROWS,
        paper=tuple(paper_column("kernel_lra", name, label, "decode",
                                 ("accuracy",), split="test")
                    for name, label in _LRA_TASKS),
        mini=(dataclasses.replace(
            MINI_LISTOPS,
            gin=MINI_LISTOPS.gin + ("tables/mini/unpacked.gin",)),),
        published={name: {"accuracy": _by_row(_LRA, [p[i] for p in
                                                     _LRA_PUBLISHED])}
                   for i, (name, _) in enumerate(_LRA_TASKS)}),
    Table(
        "kernel_glue",
        "Learning the Transformer Kernel: GLUE",
        (("transformer", "Transformer (softmax)"), ("performer", "Performer"))
        + KERNEL_ROWS,
        paper=(paper_column("kernel_glue", "glue", "GLUE", "decode",
                            ("average",)),),
        mini=(MINI_RECALL,)),
    Table(
        "kernel_sparsity",
        "Learning the Transformer Kernel: controllable sparsity "
        "(k relevant of n positions)",
        (("transformer", "Transformer (softmax)"), ("performer", "Performer"))
        + KERNEL_ROWS,
        paper=tuple(paper_column("kernel_sparsity", "sparsity_%dof1024" % k,
                                 "%d/1024 relevant" % k, "decode",
                                 ("accuracy",))
                    for k in (8, 64, 512)),
        mini=mini_sparsity("encoder_classifier")),
)}

# Lower is better for these metrics; everything else is higher-is-better.
LOWER_IS_BETTER = ("perplexity", "loss", "mean_edit")
