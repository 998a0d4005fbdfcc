"""Hugging Face T5 checkpoints <-> mtf_synth (mesh TF) checkpoints.

Import (`import_hf_t5`, importer.py): a transformers T5 directory becomes a
mesh TF model directory, `model.gin` + `model.ckpt-0`. Export
(`export_hf_t5`, exporter.py): a vanilla-attention mtf_synth checkpoint
becomes config.json + model.safetensors. Both build the model with gin
exactly as the `mtf_synth` command line does (mtf_model.py); names.py maps
variable names and layouts, architecture.py the hyperparameters, and
command_line.py is `python -m mtf_synth.hf_t5`.
"""

# A checkpoint or configuration the converter cannot convert faithfully: a
# user error (one line, exit 2, from the command line).
from mtf_synth.errors import ConversionError
from mtf_synth.hf_t5.architecture import T5Architecture
from mtf_synth.hf_t5.exporter import default_gin_files
from mtf_synth.hf_t5.exporter import export_hf_t5
from mtf_synth.hf_t5.exporter import read_checkpoint
from mtf_synth.hf_t5.importer import ImportReport
from mtf_synth.hf_t5.importer import import_hf_t5
from mtf_synth.hf_t5.importer import read_hf_weights
from mtf_synth.hf_t5.importer import write_checkpoint
from mtf_synth.hf_t5.mtf_model import GIN_FILE
from mtf_synth.hf_t5.mtf_model import call_model
from mtf_synth.hf_t5.mtf_model import gin_model
from mtf_synth.hf_t5.mtf_model import model_variables
from mtf_synth.hf_t5.names import hf_name
from mtf_synth.hf_t5.names import vanilla_name
from mtf_synth.hf_t5.command_line import main  # after what it runs

__all__ = [
    "ConversionError", "GIN_FILE", "ImportReport", "T5Architecture",
    "call_model", "default_gin_files", "export_hf_t5", "gin_model",
    "hf_name", "import_hf_t5", "main", "model_variables", "read_checkpoint",
    "read_hf_weights", "vanilla_name", "write_checkpoint",
]
