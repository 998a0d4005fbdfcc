"""mtf_synth: Synthesizer and learned-kernel attention for Mesh TF on TF 2.21."""

from mtf_synth import compat

compat.apply()
from mtf_synth import gradient_allreduce  # noqa: E402,F401  (gin configurables)
from mtf_synth import padded_vocabulary  # noqa: E402,F401
from mtf_synth.layers.synthesizer import SynthesizerAttention  # noqa: E402
from mtf_synth.layers.kernel_attention import KernelAttention  # noqa: E402
from mtf_synth.layers.baselines import DynamicConvolution  # noqa: E402
from mtf_synth.layers.baselines import LightweightConvolution  # noqa: E402
from mtf_synth.layers.baselines import Linformer  # noqa: E402
