"""The compatibility sweep: SLaK in one config of every model family that
mmdet, mmseg and mmpretrain package, as a user puts it there, trained one
step and tested one step on synthetic data (``tools/compat_sweep.py``,
``make compat``; the table is docs/compatibility.md)."""
from .families import PACKAGES, Family, packaged_families, representative
from .result import Result
from .trial import run_trial

__all__ = [
    'PACKAGES', 'Family', 'Result', 'packaged_families', 'representative',
    'run_trial'
]
