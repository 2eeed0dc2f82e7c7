"""Analysis tools (``tools/analysis/``): effective receptive field, FLOPs
and parameters, training curves."""
from .complexity import count_complexity, format_report, get_flops
from .curves import Scalars, load_scalars, plot_curves
from .erf import (build_erf_backbone, erf_contribution, high_contribution_area,
                  plot_erf)
from .inputs import det_data_samples

__all__ = [
    'build_erf_backbone', 'erf_contribution', 'high_contribution_area',
    'plot_erf', 'Scalars', 'load_scalars', 'plot_curves', 'count_complexity',
    'det_data_samples', 'format_report', 'get_flops'
]
