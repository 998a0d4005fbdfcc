"""`python -m mtf_synth` is the `mtf_synth` command line."""

from mtf_synth import cli

cli.console_main()
