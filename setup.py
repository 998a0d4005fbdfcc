"""mtf_synth: Synthesizer and learned-kernel attention for Mesh TensorFlow on TF 2.21.

Install with scripts/setup.sh, which also installs the two alias packages in
packaging/ so that exactly one tensorflow_datasets and one seqio end up
installed (t5 0.9.4 asks for their nightly builds, which share folders with
the releases).
"""
import setuptools

setuptools.setup(
    name="mtf_synth",
    version="0.1.0",
    description=("Synthesizer and learned-kernel attention as Mesh TensorFlow "
                 "layers in the T5 stack, on modern TensorFlow."),
    packages=setuptools.find_packages(include=["mtf_synth", "mtf_synth.*",
                                               "tasks", "tasks.*"])
    + ["mtf_synth.gin"],
    # The repository's gin/ is installed as mtf_synth/gin (the command
    # line's search path; a top-level `gin` would shadow gin-config).
    package_dir={"mtf_synth.gin": "gin"},
    package_data={"mtf_synth.gin": ["*.gin", "*/*.gin", "*/*/*.gin",
                                    "*/*/*/*.gin"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow==2.21.0",
        "tensorflow-text==2.21.1",
        "tensorboard==2.21.0",
        "mesh-tensorflow[transformer]==0.1.21",
        "t5==0.9.4",
        "seqio==0.0.20",
        "tensorflow-datasets==4.9.9",
        "gin-config==0.5.0",
        "sentencepiece>=0.2,<0.3",
        # mesh TF's transformer/utils.py imports pkg_resources (gone in setuptools 81).
        "setuptools<81",
        # t5.evaluation indexes a DataFrame with a set (an error in pandas 3).
        "pandas<3",
        "matplotlib",
    ],
    extras_require={
        # mock, tensorflow-probability: the tests shipped in mesh TF. Not ortools
        # (mesh TF's auto_mtf tests): it pins protobuf < 6.34, sentencepiece
        # needs protobuf 7.
        "test": ["pytest", "pytest-timeout", "mock", "tensorflow-probability",
                 "tf-keras==2.21.0"],
    },
    entry_points={"console_scripts": ["mtf_synth=mtf_synth.cli:console_main"]},
)
