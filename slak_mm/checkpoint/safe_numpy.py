"""Numpy objects in checkpoints, rebuilt without trusting the pickle.

mmengine's training checkpoints hold numpy arrays, scalars and dtypes (the
message hub's ``HistoryBuffer``, runtime info). Allow-listing numpy's own
callables in ``torch.load(weights_only=True)`` is unsafe: ``np.ndarray``
builds an array over raw bytes, and a dtype of ``object`` (or a structured
dtype with an object field) makes those bytes *pointers*; ``np.dtype`` and
array ``__setstate__`` (pickle's BUILD) can mutate an existing descriptor
into one. Printing or copying such an array dereferences forged pointers
(a segfault at best, code execution at worst). torch refuses to allow-list
numpy callables for this reason.

So the names a numpy pickle refers to are bound here to inert stand-ins:

- ``numpy.dtype`` -> :class:`DtypeSpec`, which only records its arguments
  and its BUILD state;
- ``numpy.core.multiarray._reconstruct`` -> :func:`reconstruct`, returning
  an :class:`ArraySpec` that records the array's BUILD state;
- ``numpy.core.multiarray.scalar`` -> :func:`scalar`;
- ``numpy.ndarray`` -> :class:`NdarrayName`, a marker that refuses to be
  called (a legitimate pickle only passes it to ``_reconstruct``).

Real numpy objects are made from the recorded values by
:func:`build_dtype` / :func:`build_array` through numpy's public
constructors (``np.dtype``, ``np.frombuffer``), after checking that the
dtype is plain data: bool, integer, float, complex, bytes, str, void, or
a structured / sub-array dtype of those. No numpy object is ever handed
to pickle's BUILD, so nothing can be mutated after the check.
:func:`materialize` then swaps the stand-ins in the loaded object for the
real arrays. Anything else is refused with :class:`NumpyRefused`.
"""
import math
from typing import Any, Dict, List, Tuple

import numpy as np
import torch

#: dtype kinds that hold plain data (no Python object pointers).
PLAIN_KINDS = frozenset('biufcSUV')
_MAX_DEPTH = 32  # nesting of structured dtypes / loaded containers


class NumpyRefused(Exception):
    """A numpy object in a checkpoint that slak_mm will not build.

    Deliberately not an ``UnpicklingError``: torch rewraps those into a
    generic message, this one reaches the loader as it is.
    """


class DtypeSpec:
    """Stand-in for ``numpy.dtype(...)`` during unpickling: records the
    constructor arguments and the BUILD state, builds nothing."""

    def __new__(cls, *args, **kwargs):
        spec = super().__new__(cls)
        spec.args, spec.state = args, None
        return spec

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state


class ArraySpec:
    """Stand-in for an ndarray during unpickling; its BUILD state is turned
    into a real array at once (:func:`build_array`)."""

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        self.array = build_array(state)


class NdarrayName:
    """What ``numpy.ndarray`` resolves to: only a marker for
    :func:`reconstruct`; building an array over a raw buffer is refused."""

    def __new__(cls, *args, **kwargs):
        raise NumpyRefused(
            'a direct numpy.ndarray(shape, dtype, buffer) construction (an '
            'array over raw bytes; numpy itself never pickles one)')


def reconstruct(subtype, shape, dtype_code) -> ArraySpec:
    """Stand-in for ``numpy.core.multiarray._reconstruct``."""
    if subtype is not NdarrayName:
        raise NumpyRefused(f'an array of type {subtype!r} (only plain '
                           f'numpy.ndarray is read)')
    return ArraySpec()


def scalar(dtype, data=None):
    """Stand-in for ``numpy.core.multiarray.scalar``: a numpy scalar from
    its dtype and raw bytes (built at once; scalars are immutable)."""
    dt = build_dtype(dtype, what='a scalar')
    if not isinstance(data, (bytes, bytearray)) or len(data) != dt.itemsize:
        raise NumpyRefused(
            f'a numpy {dt} scalar whose data is not {dt.itemsize} raw bytes')
    return np.frombuffer(bytes(data), dtype=dt)[0]


def empty_bytes(*args) -> bytes:
    """Stand-in for ``builtins.bytes``: protocol-2 pickles write ``b''``
    (the data of an empty array) as ``bytes()``; any other call (e.g.
    ``bytes(10**12)``, a memory bomb) is refused."""
    if args:
        raise NumpyRefused(f'a bytes{args!r:.60} call (only bytes() of an '
                           f'empty array is read)')
    return b''


def _plain_kind(dt: np.dtype, what: str) -> np.dtype:
    if dt.hasobject or dt.kind not in PLAIN_KINDS:
        raise NumpyRefused(
            f'{what} of numpy dtype {dt.str!r} (kind {dt.kind!r}): only '
            f'bool, integer, float, complex, bytes, str and void data is '
            f'read; object dtypes would turn file bytes into pointers')
    return dt


def build_dtype(spec, depth: int = 0, what: str = 'an array') -> np.dtype:
    """A real numpy dtype from a recorded :class:`DtypeSpec`.

    Args:
        spec (DtypeSpec): The recorded ``np.dtype(obj, align, copy)`` call
            and its pickled state ``(version, byteorder, subarray, names,
            fields, itemsize, alignment, flags[, metadata])``.
        depth (int): Nesting level (structured and sub-array dtypes).
        what (str): What the dtype is for, in refusals.

    Returns:
        np.dtype: A new descriptor made by ``np.dtype``'s public
        constructor.

    Raises:
        NumpyRefused: Not a dtype, an object dtype or a field of one, or a
            state that does not describe a plain dtype.
    """
    if depth > _MAX_DEPTH:
        raise NumpyRefused('a numpy dtype nested deeper than '
                           f'{_MAX_DEPTH} levels')
    if not isinstance(spec, DtypeSpec):
        raise NumpyRefused(f'{type(spec).__name__} where a numpy dtype '
                           f'belongs')
    args = spec.args
    if not args or not isinstance(args[0], str) or len(args) > 3:
        raise NumpyRefused(f'numpy.dtype{args!r:.80} (only a type code '
                           f'such as "f8" is read)')
    try:
        base = np.dtype(args[0])
    except (TypeError, ValueError) as err:
        raise NumpyRefused(f'numpy dtype code {args[0]!r:.40} ({err})')
    _plain_kind(base, what)
    state = spec.state
    if state is None:
        return base
    if not isinstance(state, tuple) or len(state) not in (8, 9) or \
            state[0] not in (3, 4):
        raise NumpyRefused(f'a numpy dtype state {state!r:.80}')
    _, order, subarray, names, fields, itemsize = state[:6]
    if subarray is not None:
        if not (isinstance(subarray, tuple) and len(subarray) == 2
                and isinstance(subarray[1], tuple)):
            raise NumpyRefused(f'a numpy sub-array dtype {subarray!r:.80}')
        dt = np.dtype((build_dtype(subarray[0],
                                   depth + 1), _shape(subarray[1])))
    elif names is not None or fields is not None:
        dt = _structured(names, fields, itemsize, depth)
    else:
        dt = base
    if order in ('<', '>') and dt.byteorder not in ('|', order):
        dt = dt.newbyteorder(order)
    if base.itemsize and dt.itemsize != base.itemsize:
        raise NumpyRefused(f'a numpy dtype of {dt.itemsize} bytes declared '
                           f'as {args[0]!r}')
    return _plain_kind(dt, what)


def _structured(names, fields, itemsize, depth: int) -> np.dtype:
    if not (isinstance(names, tuple) and isinstance(fields, dict)
            and all(isinstance(n, str) for n in names)
            and set(names) == set(fields) and isinstance(itemsize, int)):
        raise NumpyRefused('a numpy structured dtype whose names and '
                           'fields do not match')
    formats, offsets = [], []
    for name in names:
        entry = fields[name]
        if not (isinstance(entry, tuple) and 2 <= len(entry) <= 3
                and isinstance(entry[1], int)):
            raise NumpyRefused(f'numpy field {name!r}: {entry!r:.80}')
        field = _plain_kind(
            build_dtype(entry[0], depth + 1), f'field {name!r}')
        if entry[1] < 0 or entry[1] + field.itemsize > itemsize:
            raise NumpyRefused(
                f'numpy field {name!r} at bytes {entry[1]}..'
                f'{entry[1] + field.itemsize} of a {itemsize}-byte record')
        formats.append(field)
        offsets.append(entry[1])
    try:
        return np.dtype(
            dict(
                names=list(names),
                formats=formats,
                offsets=offsets,
                itemsize=itemsize))
    except (TypeError, ValueError) as err:
        raise NumpyRefused(f'a numpy structured dtype ({err})')


def _shape(shape) -> Tuple[int, ...]:
    if not isinstance(shape, tuple) or not all(
            isinstance(s, int) and s >= 0 for s in shape):
        raise NumpyRefused(f'a numpy shape {shape!r:.80}')
    return shape


def build_array(state) -> np.ndarray:
    """A real, writable ndarray from a pickled array state.

    Args:
        state (tuple): ``(version, shape, dtype, is_fortran, raw_bytes)`` as
            ``ndarray.__reduce__`` writes it.

    Returns:
        np.ndarray: A copy of the bytes, in the recorded shape and order.

    Raises:
        NumpyRefused: A dtype that is not plain data, a list of objects
            instead of raw bytes, or a size that does not match the shape.
    """
    if not (isinstance(state, tuple) and len(state) == 5):
        raise NumpyRefused(f'a numpy array state {state!r:.80}')
    _, shape, dtype, fortran, data = state
    dt = build_dtype(dtype)
    shape = _shape(shape)
    if not isinstance(data, (bytes, bytearray)):
        raise NumpyRefused(f'a numpy {dt} array whose data is a '
                           f'{type(data).__name__}, not raw bytes')
    expected = math.prod(shape) * dt.itemsize
    if len(data) != expected:
        raise NumpyRefused(f'a numpy {dt} array of shape {shape}: '
                           f'{len(data)} data bytes, expected {expected}')
    flat = np.frombuffer(bytes(data), dtype=dt)
    return flat.reshape(
        shape,
        order='F' if fortran else 'C').copy(order='F' if fortran else 'C')


def unpickle_bindings() -> List[Tuple[Any, str]]:
    """``(stand-in, 'numpy.name')`` pairs for
    ``torch.serialization.safe_globals``, under the module names numpy 1.x
    and 2.x write."""
    # ArraySpec must be allow-listed for BUILD, under a name with no dot,
    # which no pickle GLOBAL (always 'module.name') can refer to
    pairs = [(DtypeSpec, 'numpy.dtype'), (NdarrayName, 'numpy.ndarray'),
             (ArraySpec, '<slak_mm numpy array stand-in>'),
             (empty_bytes, 'builtins.bytes')]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        pairs += [(reconstruct, f'{module}._reconstruct'),
                  (scalar, f'{module}.scalar')]
    return pairs


def materialize(obj: Any) -> Any:
    """Replace the stand-ins in a loaded object by real numpy objects.

    Walks dicts, lists, tuples, sets and the ``__dict__`` of allow-listed
    objects (``argparse.Namespace``, ``HistoryBuffer``); tensors are left
    alone.

    Args:
        obj: What ``torch.load`` returned.

    Returns:
        The same object (containers updated in place; tuples rebuilt).

    Raises:
        NumpyRefused: A stand-in that never got its state, or a numpy
            object used as a dict key or set member.
    """
    return _Materializer().visit(obj, 0)


class _Materializer:

    def __init__(self):
        self.done: Dict[int, Any] = {}

    def visit(self, obj: Any, depth: int) -> Any:
        if isinstance(obj, (str, bytes, int, float, bool, type(None))):
            return obj
        if isinstance(obj, ArraySpec):
            if obj.array is None:
                raise NumpyRefused('a numpy array without its data')
            return obj.array
        if isinstance(obj, DtypeSpec):
            return build_dtype(obj)
        if id(obj) in self.done:
            return self.done[id(obj)]
        if depth > 10 * _MAX_DEPTH:
            raise NumpyRefused('containers nested deeper than '
                               f'{10 * _MAX_DEPTH} levels')
        self.done[id(obj)] = obj
        if isinstance(obj, dict):
            for key in obj:
                self._check_key(key)
            for key, value in obj.items():
                obj[key] = self.visit(value, depth + 1)
        elif isinstance(obj, list):
            obj[:] = [self.visit(v, depth + 1) for v in obj]
        elif isinstance(obj, (set, frozenset)):
            for key in obj:
                self._check_key(key)
        elif isinstance(obj, tuple):
            items = [self.visit(v, depth + 1) for v in obj]
            if any(a is not b for a, b in zip(items, obj)):
                new = type(obj)(items) if type(obj) is tuple else \
                    type(obj)(*items)
                self.done[id(obj)] = new
                return new
        elif hasattr(obj, '__dict__') and not _is_tensor(obj) and \
                not isinstance(obj, type):
            self.visit(vars(obj), depth + 1)
        return obj

    @staticmethod
    def _check_key(key: Any) -> None:
        if isinstance(key, (ArraySpec, DtypeSpec)):
            raise NumpyRefused('a numpy object as a dict key or set member')


def _is_tensor(obj: Any) -> bool:
    return isinstance(obj, torch.Tensor)
