"""The choice of ``impl='auto'`` for a key that is not measured: tuning
off (``tune=False``), the process's cap of tuned keys reached, little work,
several processes training together, ``torch.compile`` tracing, or the
reference failing while measured. Nothing here imports mm packages.
"""
from .keys import TuningKey
from .registry import CANDIDATES, REFERENCE


def heuristic(key: TuningKey) -> str:
    """The untuned choice for a key.

    CPU, training: FFT for kernels with a side >= 17 on maps of at least
    24 x 24, else torch; CPU inference: torch (oneDNN's channels-last
    forward beat the FFT at every SLaK-T stage, batch 1, 512x512, measured
    on this project's CPU, ``docs/benchmarks.md``). Other devices: torch
    (cuDNN: the Triton kernels have not been timed on a GPU).

    Args:
        key (TuningKey): From :func:`slak_mm.ops.keys.tuning_key`.

    Returns:
        str: An implementation name.
    """
    if (key.device_type != 'cpu' or key.mode != 'train'
            or 'fft' not in CANDIDATES):
        return REFERENCE
    large = max(max(s) for s in key.kernels) >= 17
    return 'fft' if large and key.height * key.width >= 24 * 24 \
        else REFERENCE
