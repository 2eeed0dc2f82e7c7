"""Analysis tools (``tools/analysis/``): effective receptive field, ..."""
from .erf import (build_erf_backbone, erf_contribution, high_contribution_area,
                  plot_erf)
from .complexity import count_complexity, format_report, get_flops
from .curves import Scalars, load_scalars, plot_curves

__all__ = [
    'build_erf_backbone', 'erf_contribution', 'high_contribution_area',
    'plot_erf', 'Scalars', 'load_scalars', 'plot_curves', 'count_complexity',
    'format_report', 'get_flops'
]
