"""Satisfies t5's `seqio-nightly` requirement with the pinned `seqio` release.

Both distributions install into the same `seqio/` folder; see the
tfds-nightly alias beside this one for why only one may be installed.
"""
import setuptools

setuptools.setup(
    name="seqio-nightly",
    version="0.0.0+mtfsynth.alias",
    description="Alias: installs seqio in place of seqio-nightly.",
    install_requires=["seqio==0.0.20"],
    py_modules=[],
)
