"""The environment settings of the depthwise convs, read here and nowhere
else in :mod:`slak_mm.ops` (as timm's ``layers/config.py`` does).

Each is read at the call, not at import, so a test or a benchmark can change
it in a running process:

================================  ==========================================
variable                          meaning
================================  ==========================================
``SLAK_MM_DWCONV_IMPL``           ``auto`` (default) measures per shape;
                                  ``torch``, ``fft`` or ``triton`` forces one
``SLAK_MM_DWCONV_TUNE``           ``0`` turns the measuring off (stored
                                  choices, then the heuristic)
``SLAK_MM_DWCONV_RETUNE``         ``1`` ignores the stored choices: each key
                                  is measured again, once in this process,
                                  and its new record replaces the stored one
``SLAK_MM_DWCONV_CACHE``          the JSON file of measured choices (default
                                  ``$XDG_CACHE_HOME/slak_mm/dwconv_tune.json``,
                                  ``~/.cache/...`` when that is unset)
``SLAK_MM_DWCONV_MAX_TUNED``      keys one process may tune (default 32)
``SLAK_MM_CPU_LAYOUT``            ``channels_last`` (default) or ``nchw``: the
                                  memory layout of the convs on the CPU
``TRITON_INTERPRET``              ``1`` runs the Triton kernels in Triton's
                                  interpreter, on CPU tensors (the test mode)
``RANK``, ``WORLD_SIZE``          set by the launchers (torchrun, mmengine's
                                  slurm launcher): read until
                                  ``torch.distributed`` is initialised
================================  ==========================================

Nothing here imports torch or mm packages.
"""
import os
import os.path as osp
from typing import Optional, Tuple

#: Forces an implementation (``auto`` | ``torch`` | ``fft`` | ``triton``).
IMPL_ENV = 'SLAK_MM_DWCONV_IMPL'
#: ``0`` turns the measurement off (stored choices, then the heuristic).
TUNE_ENV = 'SLAK_MM_DWCONV_TUNE'
#: ``1`` measures every key again (once per process), ignoring stored ones.
RETUNE_ENV = 'SLAK_MM_DWCONV_RETUNE'
#: Path of the JSON file of measured choices.
CACHE_ENV = 'SLAK_MM_DWCONV_CACHE'
#: How many keys one process may tune (default :data:`DEFAULT_MAX_TUNED`).
MAX_TUNED_ENV = 'SLAK_MM_DWCONV_MAX_TUNED'
#: ``channels_last`` (default) or ``nchw``: the CPU layout of the convs.
CPU_LAYOUT_ENV = 'SLAK_MM_CPU_LAYOUT'
#: Triton's own switch to its interpreter (CPU tensors).
TRITON_INTERPRET_ENV = 'TRITON_INTERPRET'

#: Values of ``impl`` (and of ``$SLAK_MM_DWCONV_IMPL``).
IMPLS = ('auto', 'torch', 'fft', 'triton')
#: Values of ``$SLAK_MM_CPU_LAYOUT``.
CPU_LAYOUTS = ('channels_last', 'nchw')
DEFAULT_MAX_TUNED = 32


def conv_impl(impl: Optional[str] = None) -> str:
    """The implementation asked for: ``impl``, else
    ``$SLAK_MM_DWCONV_IMPL``, else ``'auto'``.

    Args:
        impl (str, optional): An argument that overrides the environment.

    Returns:
        str: One of :data:`IMPLS`.

    Raises:
        ValueError: If the value is not one of :data:`IMPLS`.
    """
    impl = impl or os.environ.get(IMPL_ENV, 'auto')
    if impl not in IMPLS:
        raise ValueError(f'Unknown depthwise conv implementation {impl!r} '
                         f'(argument or ${IMPL_ENV}); choose one of {IMPLS}')
    return impl


def impl_env_error(missing: str) -> ValueError:
    """The error for a ``$SLAK_MM_DWCONV_IMPL`` that cannot run here (a
    user setting, so one line naming it, not a traceback).

    Args:
        missing (str): What this machine or input lacks.

    Returns:
        ValueError: Naming the variable, ``missing`` and the values to use.
    """
    impl = os.environ.get(IMPL_ENV)
    others = ', '.join(i for i in IMPLS if i != impl)
    return ValueError(f'{IMPL_ENV}={impl} cannot run here: {missing}; set '
                      f'{IMPL_ENV} to one of {others} (auto when unset)')


def tuning_enabled() -> bool:
    """Whether ``auto`` may measure (``$SLAK_MM_DWCONV_TUNE`` is not
    ``0``)."""
    return os.environ.get(TUNE_ENV, '1') != '0'


def retune() -> bool:
    """Whether stored choices are to be measured again
    (``$SLAK_MM_DWCONV_RETUNE`` is ``1``)."""
    return os.environ.get(RETUNE_ENV, '0') == '1'


def launcher_rank_world() -> Tuple[int, int]:
    """This process's rank and the number of processes as the launcher set
    them (``$RANK``, ``$WORLD_SIZE``), before ``torch.distributed`` is
    initialised.

    Returns:
        tuple[int, int]: ``(rank, world_size)``; ``(0, 1)`` when unset or
        not integers.
    """
    try:
        return (int(os.environ.get('RANK',
                                   0)), int(os.environ.get('WORLD_SIZE', 1)))
    except ValueError:
        return 0, 1


def max_tuned() -> int:
    """How many keys one process may tune (``$SLAK_MM_DWCONV_MAX_TUNED``;
    :data:`DEFAULT_MAX_TUNED` when unset or not an integer)."""
    try:
        return int(os.environ.get(MAX_TUNED_ENV, DEFAULT_MAX_TUNED))
    except ValueError:
        return DEFAULT_MAX_TUNED


def cache_path() -> str:
    """The JSON file of measured choices.

    Returns:
        str: ``$SLAK_MM_DWCONV_CACHE``, else
        ``$XDG_CACHE_HOME/slak_mm/dwconv_tune.json`` (``~/.cache`` when
        unset).
    """
    path = os.environ.get(CACHE_ENV)
    if path:
        return path
    root = os.environ.get('XDG_CACHE_HOME') or osp.join(
        osp.expanduser('~'), '.cache')
    return osp.join(root, 'slak_mm', 'dwconv_tune.json')


def cpu_layout() -> str:
    """The memory layout of the convs on the CPU.

    Returns:
        str: ``$SLAK_MM_CPU_LAYOUT``, default ``'channels_last'``.

    Raises:
        ValueError: If the value is not one of :data:`CPU_LAYOUTS`.
    """
    layout = os.environ.get(CPU_LAYOUT_ENV, 'channels_last')
    if layout not in CPU_LAYOUTS:
        raise ValueError(f'${CPU_LAYOUT_ENV}={layout!r}; choose one of '
                         f'{CPU_LAYOUTS}')
    return layout


def triton_interpreting() -> bool:
    """Whether Triton runs interpreted (``TRITON_INTERPRET=1``), i.e. on
    CPU tensors."""
    return os.environ.get(TRITON_INTERPRET_ENV, '0') == '1'
