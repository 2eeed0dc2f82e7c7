"""Analysis tools (``tools/analysis/``): effective receptive field (one
model: :mod:`.erf`; several, written to a folder: :mod:`.erf_compare`),
FLOPs and parameters, training curves."""
from .complexity import count_complexity, format_report, get_flops
from .curves import Scalars, load_scalars, plot_curves
from .erf import (build_erf_backbone, erf_contribution, high_contribution_area,
                  plot_erf)
from .erf_compare import compare_erfs, erf_models
from .inputs import det_data_samples

__all__ = [
    'build_erf_backbone', 'compare_erfs', 'erf_contribution', 'erf_models',
    'high_contribution_area', 'plot_erf', 'Scalars', 'load_scalars',
    'plot_curves', 'count_complexity', 'det_data_samples', 'format_report',
    'get_flops'
]
