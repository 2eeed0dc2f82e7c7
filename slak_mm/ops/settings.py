"""The settings of the depthwise convs: one :class:`OpsSettings` object,
read from the environment once, changed by code through :class:`use` (a
block) or :func:`configure` (the rest of the process), as timm's
``layers/config.py`` does with ``TIMM_FUSED_ATTN`` / ``set_fused_attn()``.

The environment is the user's boundary: it is read at the first call that
needs a setting (not at import, so a script may still set a variable after
``import slak_mm``), and never again in that process unless
:func:`reload` is called (tests, and the tests' in-process tool runs, which
stand for new processes). Code does not write ``os.environ`` to steer the
convs; it writes::

    with slak_mm.ops.use(impl='fft', tune=False):
        model(x)

================================  ==========================================
variable (field)                  meaning
================================  ==========================================
``SLAK_MM_DWCONV_IMPL``           ``auto`` (default) measures per shape;
(``impl``)                        ``torch``, ``fft`` or ``triton`` forces one
``SLAK_MM_DWCONV_TUNE``           ``0`` turns the measuring off (stored
(``tune``)                        choices, then the heuristic)
``SLAK_MM_DWCONV_RETUNE``         ``1`` ignores the stored choices: each key
(``retune``)                      is measured again, once in this process,
                                  and its new record replaces the stored one
``SLAK_MM_DWCONV_CACHE``          the JSON file of measured choices (default
(``cache``)                       ``$XDG_CACHE_HOME/slak_mm/dwconv_tune.json``,
                                  ``~/.cache/...`` when that is unset)
``SLAK_MM_DWCONV_MAX_TUNED``      keys one process may tune (default 32)
(``max_tuned``)
``SLAK_MM_CPU_LAYOUT``            ``channels_last`` (default) or ``nchw``: the
(``cpu_layout``)                  memory layout of the convs on the CPU
``TRITON_INTERPRET``              ``1`` runs the Triton kernels in Triton's
(``triton_interpret``)            interpreter, on CPU tensors (the test mode)
================================  ==========================================

An unknown ``impl`` or ``cpu_layout`` is refused with one line naming the
variable (or the field, when code set it) and the values to use, at every
call until it is fixed; an unparsable ``SLAK_MM_DWCONV_MAX_TUNED`` means
the default, as before.

``RANK`` and ``WORLD_SIZE`` are no settings but what the launcher (torchrun,
mmengine's slurm launcher) says about this process: they are read by
:func:`slak_mm.utils.dist.rank_and_world` until ``torch.distributed`` is
initialised.

The settings are process-wide (like timm's), not per thread. Nothing here
imports torch or mm packages.
"""
import dataclasses
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import FrozenSet, List, Mapping, Optional, Tuple

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

#: The variable of each field of :class:`OpsSettings`.
ENV_NAMES = dict(
    impl=IMPL_ENV,
    tune=TUNE_ENV,
    retune=RETUNE_ENV,
    cache=CACHE_ENV,
    max_tuned=MAX_TUNED_ENV,
    cpu_layout=CPU_LAYOUT_ENV,
    triton_interpret=TRITON_INTERPRET_ENV)

#: Values of ``impl`` (and of ``$SLAK_MM_DWCONV_IMPL``).
IMPLS = ('auto', 'torch', 'fft', 'triton')
#: Values of ``cpu_layout`` (and of ``$SLAK_MM_CPU_LAYOUT``).
CPU_LAYOUTS = ('channels_last', 'nchw')
DEFAULT_MAX_TUNED = 32


def default_cache_path(environ: Optional[Mapping[str, str]] = None) -> str:
    """Where the measured choices go when ``$SLAK_MM_DWCONV_CACHE`` is
    unset.

    Args:
        environ (Mapping, optional): The environment. Default:
            ``os.environ``.

    Returns:
        str: ``$XDG_CACHE_HOME/slak_mm/dwconv_tune.json`` (``~/.cache``
        when unset).
    """
    environ = os.environ if environ is None else environ
    root = environ.get('XDG_CACHE_HOME') or osp.join(
        osp.expanduser('~'), '.cache')
    return osp.join(root, 'slak_mm', 'dwconv_tune.json')


def _check_choice(value: str, allowed: Tuple[str, ...], name: str,
                  what: str) -> None:
    if value not in allowed:
        raise ValueError(f'Unknown {what} {value!r} ({name}); choose one of '
                         f'{", ".join(allowed)}')


@dataclass(frozen=True)
class OpsSettings:
    """What the depthwise convs do when a call does not say (see the
    module's table for the variable of each field).

    Args:
        impl (str): One of :data:`IMPLS`; ``'auto'`` measures per shape.
            A call's own ``impl`` argument wins over it.
        tune (bool): Whether ``auto`` may measure new keys (else stored
            choices, then the heuristic).
        retune (bool): Whether stored choices are measured again (once
            per key in this process).
        cache (str): The JSON file of measured choices. Default:
            :func:`default_cache_path`.
        max_tuned (int): Keys one process may tune.
        cpu_layout (str): One of :data:`CPU_LAYOUTS`.
        triton_interpret (bool): Whether the Triton kernels run in Triton's
            interpreter, on CPU tensors (a test mode).
        from_environment (frozenset[str]): The fields whose value is the
            environment's (their errors name the variable); set by
            :func:`from_environ`, kept by :class:`use` for the fields it
            does not change.

    Raises:
        ValueError: If ``impl`` or ``cpu_layout`` is unknown, or
            ``max_tuned`` is negative.
    """
    impl: str = 'auto'
    tune: bool = True
    retune: bool = False
    cache: str = field(default_factory=default_cache_path)
    max_tuned: int = DEFAULT_MAX_TUNED
    cpu_layout: str = 'channels_last'
    triton_interpret: bool = False
    from_environment: FrozenSet[str] = field(
        default=frozenset(), repr=False, compare=False)

    def __post_init__(self):
        _check_choice(self.impl, IMPLS, self.source('impl'),
                      'depthwise conv implementation')
        _check_choice(self.cpu_layout, CPU_LAYOUTS, self.source('cpu_layout'),
                      'CPU layout')
        if not isinstance(self.max_tuned, int) or self.max_tuned < 0:
            raise ValueError(f'max_tuned={self.max_tuned!r}: expected a '
                             f'number of keys >= 0')

    def source(self, name: str) -> str:
        """Where a field's value comes from, for messages.

        Args:
            name (str): A field.

        Returns:
            str: Its variable (``'$SLAK_MM_DWCONV_IMPL'``) when the value is
            the environment's, else ``'slak_mm.ops setting impl'``.
        """
        if name in self.from_environment:
            return f'${ENV_NAMES[name]}'
        return f'slak_mm.ops setting {name}'


def from_environ(environ: Optional[Mapping[str, str]] = None) -> OpsSettings:
    """The settings an environment asks for (unset variables: defaults).

    Args:
        environ (Mapping, optional): The environment. Default:
            ``os.environ``.

    Returns:
        OpsSettings: Its ``from_environment`` names the variables set.

    Raises:
        ValueError: If ``$SLAK_MM_DWCONV_IMPL`` or ``$SLAK_MM_CPU_LAYOUT``
            holds an unknown value (one line naming the variable).
    """
    environ = os.environ if environ is None else environ
    given = {
        name: environ[var]
        for name, var in ENV_NAMES.items() if var in environ
    }
    values = dict(
        impl=given.get('impl', 'auto'),
        tune=given.get('tune', '1') != '0',
        retune=given.get('retune', '0') == '1',
        cache=given.get('cache') or default_cache_path(environ),
        cpu_layout=given.get('cpu_layout', 'channels_last'),
        triton_interpret=given.get('triton_interpret', '0') == '1')
    try:
        values['max_tuned'] = max(0, int(given['max_tuned']))
    except (KeyError, ValueError):  # unset or no integer: the default
        values['max_tuned'] = DEFAULT_MAX_TUNED
    return OpsSettings(**values, from_environment=frozenset(given))


_current: Optional[OpsSettings] = None  # None: read at the next use


def current() -> OpsSettings:
    """The settings in force: the environment's, read at the first call
    (and after :func:`reload`), as changed by :class:`use` and
    :func:`configure`.

    Returns:
        OpsSettings: The settings.

    Raises:
        ValueError: If the environment holds an unknown value (at every
            call until it is fixed, as the first forward would).
    """
    global _current
    if _current is None:
        _current = from_environ()
    return _current


def reload() -> None:
    """Read the environment again at the next use, dropping what
    :func:`configure` set (for tests, and in-process runs that stand for a
    new process)."""
    global _current
    _current = None


def _changed(changes: Mapping) -> OpsSettings:
    base = current()
    unknown = set(changes) - set(ENV_NAMES)
    if unknown:
        raise TypeError(f'unknown slak_mm.ops setting(s) '
                        f'{", ".join(sorted(unknown))}; the settings are '
                        f'{", ".join(ENV_NAMES)}')
    return dataclasses.replace(
        base, **changes, from_environment=base.from_environment - set(changes))


def configure(**changes) -> OpsSettings:
    """Change settings for the rest of the process (or until
    :func:`reload`, or the end of an enclosing :class:`use` block).

    Args:
        **changes: Fields of :class:`OpsSettings` and their new values.

    Returns:
        OpsSettings: The settings now in force.

    Raises:
        TypeError: If a name is no setting.
        ValueError: If a value is not one the setting takes.
    """
    global _current
    _current = _changed(changes)
    return _current


class use:
    """Within the block, the convs run with ``changes`` applied to the
    settings in force; afterwards (also after an exception) the settings
    are what they were before the block, whatever :func:`configure` or
    :func:`reload` did inside. Blocks nest, and one object may be entered
    again (e.g. by every step of a benchmark).

    Args:
        **changes: Fields of :class:`OpsSettings` and their values, e.g.
            ``use(impl='fft', tune=False)``; none: only restore afterwards.

    Raises:
        TypeError: On entering, if a name is no setting.
        ValueError: On entering, if a value is not one the setting takes.

    Example:
        >>> with use(impl='torch'):
        ...     assert current().impl == 'torch'
    """

    def __init__(self, **changes):
        self.changes = changes
        self._saved: List[Optional[OpsSettings]] = []

    def __enter__(self) -> OpsSettings:
        global _current
        new = _changed(self.changes)  # raises before anything changes
        self._saved.append(_current)
        _current = new
        return new

    def __exit__(self, *exc_info) -> None:
        global _current
        _current = self._saved.pop()


def cache_path() -> str:
    """The JSON file of measured choices (``current().cache``).

    Returns:
        str: ``$SLAK_MM_DWCONV_CACHE``, else
        ``$XDG_CACHE_HOME/slak_mm/dwconv_tune.json`` (``~/.cache`` when
        unset), unless code set another.
    """
    return current().cache
