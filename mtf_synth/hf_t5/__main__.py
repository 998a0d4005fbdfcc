"""`python -m mtf_synth.hf_t5 {import,export} ...`."""

from mtf_synth.hf_t5 import command_line

command_line.main()
