"""Satisfies t5's `tfds-nightly` requirement with the pinned `tensorflow-datasets`.

Both distributions install into the same `tensorflow_datasets/` folder, so
having both leaves a mix of files that depends on install order. This empty
distribution makes pip install exactly one of them.
"""
import setuptools

setuptools.setup(
    name="tfds-nightly",
    version="0.0.0+mtfsynth.alias",
    description="Alias: installs tensorflow-datasets in place of tfds-nightly.",
    install_requires=["tensorflow-datasets==4.9.9"],
    py_modules=[],
)
