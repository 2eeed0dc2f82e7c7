"""A small seeded mutation fuzzer for the files slak_mm reads (issue 22,
section 5).

A *target* (``tests/test_fuzz.py`` holds one per file type) gives a base
file, the mutators that fit its format and ``check(data)``, which runs the
project's real entry point on a mutant and returns an :class:`Outcome`.
:func:`run` makes ``count`` mutants, each from ``random.Random(f'{seed}:
{target}:{index}')`` (so one index is reproduced alone, whatever the count:
:func:`make_mutant`), by stacking one to three mutations, and judges each:

* the target's verdict: ``same`` (the unmutated result), ``other`` (a
  well-formed file that says something else, and the result is what it
  says), ``refused`` (the documented one-line error), or a failure (an
  exception of another type escaping the entry point: ``traceback``; an
  error on more than one line or not naming the file; a result that
  differs without a word: ``silent change``);
* ``hang``: a mutant still running after :data:`TIME_LIMIT_S` seconds (the
  child is killed with SIGABRT, whose Python stack is kept);
* ``memory``: the peak RSS grows more than :data:`RSS_LIMIT_MIB` MiB while
  one mutant runs (the base files are a few KB: a legitimate read of them
  costs well under 1 MiB); past :data:`RSS_KILL_MIB` the child is killed;
* ``crash``: the child died (a segfault).

The mutants run in a forked child, so a hang, a memory bomb or a crash
costs the child, not the test process, and the run goes on with the next
mutant in a new child. Mutators are functions ``(rng, data) -> (data,
what)`` returning None where they do not apply; ``what`` describes the
mutation for the report (a structure-aware mutator that cannot walk what
earlier mutations left may raise instead: another one is tried). A mutator
marked :func:`rewrite` writes a well-formed container (a zip with correct
CRCs, a PNG chunk with its CRC) around mutated content, so the deeper
layers are reached; the others damage the bytes.
"""
import collections
import copy
import faulthandler
import functools
import io
import json
import logging
import os
import pickletools
import random
import select
import signal
import struct
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

from slak_mm.utils.image_formats import PNG_MAGIC

#: Mutants per target (``make fuzz`` sets it; the suite's defaults are in
#: test_fuzz.py).
MUTANTS_ENV = 'SLAK_MM_FUZZ_MUTANTS'
#: The seed of the run (default 0).
SEED_ENV = 'SLAK_MM_FUZZ_SEED'
#: A folder to save failing mutants in (``make fuzz`` sets one).
OUT_ENV = 'SLAK_MM_FUZZ_OUT'

#: A mutant running longer than this is a hang.
TIME_LIMIT_S = 10
#: Peak RSS growth allowed while one mutant runs.
RSS_LIMIT_MIB = 100
#: RSS at which the watchdog kills the child (protects the machine).
RSS_KILL_MIB = 2048

#: Verdicts that pass.
PASSING = ('same', 'other', 'refused')

Mutator = Callable[[random.Random, bytes], Optional[Tuple[bytes, str]]]


@dataclass
class Outcome:
    """A verdict on one mutant: ``kind`` (one of :data:`PASSING` or a
    failure) and a short ``detail``."""
    kind: str
    detail: str = ''

    @property
    def failed(self) -> bool:
        return self.kind not in PASSING


def refused(err: BaseException, path: str) -> Outcome:
    """The verdict on a documented error: ``refused`` when its message is
    one line naming ``path``, else a failure."""
    message = str(err)
    if '\n' in message.strip():
        return Outcome('not one line', f'{type(err).__name__}: {message}')
    if path not in message:
        return Outcome('file not named', f'{type(err).__name__}: {message}')
    return Outcome('refused', message)


@dataclass
class Mutant:
    """Mutated bytes, how they were made, and whether damage was done
    after the last well-formed rewrite (``damaged``); ``intact``: the bytes
    as that rewrite left them (the base file if there was none)."""
    data: bytes
    how: List[str]
    damaged: bool
    intact: bytes


@dataclass
class Report:
    """What one run found: verdicts counted by kind, failures in detail."""
    target: str
    seed: int
    count: int
    kinds: collections.Counter = field(default_factory=collections.Counter)
    failures: List[dict] = field(default_factory=list)
    seconds: float = 0.0
    slowest: Tuple[float, int] = (0.0, -1)  # seconds, index
    last: Optional[Outcome] = None  # the last verdict

    def summary(self) -> str:
        """One line: the target, the seed and each verdict's count."""
        kinds = ', '.join(f'{k} {n}' for k, n in sorted(self.kinds.items()))
        return (f'fuzz {self.target}: {self.count} mutants, seed '
                f'{self.seed}, {self.seconds:.1f} s (slowest: index '
                f'{self.slowest[1]}, {self.slowest[0]:.2f} s): {kinds}; '
                f'{len(self.failures)} failures')

    def describe_failures(self, limit: int = 10) -> str:
        """The failures, each with what reproduces it."""
        lines = [self.summary()]
        for failure in self.failures[:limit]:
            lines.append(f'- index {failure["index"]} ({failure["kind"]}): '
                         f'{failure["detail"][:1500]}\n  mutations: '
                         f'{failure.get("how")}; reproduce: '
                         f'{SEED_ENV}={self.seed} index {failure["index"]}')
        return '\n'.join(lines)


def rewrite(mutator: Mutator) -> Mutator:
    """Mark ``mutator`` as one that leaves a well-formed container."""
    mutator.rewrites = True
    return mutator


def make_mutant(target, seed: int, index: int) -> Mutant:
    """Mutant ``index`` of ``target`` for ``seed`` (one to three stacked
    mutations, chosen by weight; a mutator that does not apply is
    skipped).

    Args:
        target: Has ``name``, ``base`` (bytes) and ``mutators`` (a list of
            ``(weight, mutator)``).
        seed (int): The run's seed.
        index (int): The mutant's number.

    Returns:
        Mutant: Its bytes and description.
    """
    rng = random.Random(f'{seed}:{target.name}:{index}')
    weights = [w for w, _ in target.mutators]
    data, how, damaged = target.base, [], False
    intact = data
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        for _attempt in range(10):
            mutator = rng.choices(target.mutators, weights)[0][1]
            try:
                done = mutator(rng, data)
            except Exception:  # noqa: BLE001
                # a structure-aware mutator that cannot walk what earlier
                # mutations left: another one is tried
                done = None
            if done is not None and done[0] != data:
                data = done[0]
                how.append(f'{mutator.__name__}: {done[1]}')
                damaged = not getattr(mutator, 'rewrites', False)
                intact = intact if damaged else data
                break
    return Mutant(data, how, damaged, intact)


# ----------------------------------------------------------------------------
# bytes
# ----------------------------------------------------------------------------
#: Integers that break parsers: limits, signs, off-by-ones.
INTERESTING_INTS = (0, 1, 2, 3, 7, 8, 16, 63, 64, 100, 127, 128, 255, 256,
                    1000, 4096, 65535, 65536, 100000, 2**31 - 1, 2**31,
                    2**32 - 1, 2**32, 2**53, 2**63 - 1, 2**64, -1, -2, -128,
                    -2**31, -2**63)


def _span(rng: random.Random, data: bytes, most: int = 64) -> Tuple[int, int]:
    start = rng.randrange(len(data))
    return start, min(len(data), start + rng.randint(1, most))


def flip_bit(rng, data):
    if not data:
        return None
    at, bit = rng.randrange(len(data)), rng.randrange(8)
    out = bytearray(data)
    out[at] ^= 1 << bit
    return bytes(out), f'bit {bit} of byte {at}'


def set_byte(rng, data):
    if not data:
        return None
    at = rng.randrange(len(data))
    value = rng.choice((0, 1, 0x7f, 0x80, 0xff, rng.randrange(256)))
    return data[:at] + bytes([value]) + data[at + 1:], f'byte {at} = {value}'


def set_int(rng, data):
    """An interesting integer written over 2, 4 or 8 bytes, either byte
    order (lengths, offsets, sizes)."""
    width = rng.choice((2, 4, 8))
    if len(data) < width:
        return None
    at = rng.randrange(len(data) - width + 1)
    value = rng.choice(INTERESTING_INTS) % (1 << (8 * width))
    order = rng.choice(('little', 'big'))
    raw = value.to_bytes(width, order)
    return data[:at] + raw + data[at + width:], \
        f'{width}-byte {order} {value} at {at}'


def insert_bytes(rng, data):
    at = rng.randint(0, len(data))
    raw = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return data[:at] + raw + data[at:], f'{raw!r} inserted at {at}'


def delete_bytes(rng, data):
    if not data:
        return None
    start, end = _span(rng, data)
    return data[:start] + data[end:], f'bytes {start}:{end} deleted'


def truncate(rng, data):
    if not data:
        return None
    at = rng.randrange(len(data))
    return data[:at], f'cut at {at} of {len(data)}'


def duplicate_chunk(rng, data):
    """A slice copied to another place (inserted): splices the file with
    itself."""
    if not data:
        return None
    start, end = _span(rng, data, 256)
    at = rng.randint(0, len(data))
    return data[:at] + data[start:end] + data[at:], \
        f'bytes {start}:{end} copied to {at}'


def overwrite_chunk(rng, data):
    """A slice copied over another place (same length)."""
    if not data:
        return None
    start, end = _span(rng, data, 256)
    at = rng.randrange(len(data))
    out = bytearray(data)
    out[at:at + end - start] = data[start:end]
    return bytes(out[:len(data)]), f'bytes {start}:{end} copied over {at}'


#: The byte-level mutators, equally weighted.
BYTE_MUTATORS = (flip_bit, set_byte, set_int, insert_bytes, delete_bytes,
                 truncate, duplicate_chunk, overwrite_chunk)


def weighted(weight: float, mutators: Sequence[Mutator]) -> list:
    """``(weight / len(mutators), mutator)`` pairs: a group of mutators
    sharing ``weight``."""
    return [(weight / len(mutators), m) for m in mutators]


# ----------------------------------------------------------------------------
# zip (torch.save checkpoints)
# ----------------------------------------------------------------------------
#: Fixed fields of the zip headers: name -> (signature, {field: (offset,
#: struct format)}).
_ZIP_HEADERS = {
    'local': (b'PK\x03\x04', {
        'version': (4, '<H'),
        'flags': (6, '<H'),
        'method': (8, '<H'),
        'crc': (14, '<I'),
        'compressed size': (18, '<I'),
        'size': (22, '<I'),
        'name length': (26, '<H'),
        'extra length': (28, '<H')
    }),
    'central': (b'PK\x01\x02', {
        'version needed': (6, '<H'),
        'flags': (8, '<H'),
        'method': (10, '<H'),
        'crc': (16, '<I'),
        'compressed size': (20, '<I'),
        'size': (24, '<I'),
        'name length': (28, '<H'),
        'extra length': (30, '<H'),
        'comment length': (32, '<H'),
        'disk': (34, '<H'),
        'version made by': (4, '<H'),
        'internal attributes': (36, '<H'),
        'external attributes': (38, '<I'),
        'local header offset': (42, '<I')
    }),
    'end': (b'PK\x05\x06', {
        'disk entries': (8, '<H'),
        'entries': (10, '<H'),
        'directory size': (12, '<I'),
        'directory offset': (16, '<I'),
        'comment length': (20, '<H')
    }),
    'zip64 end': (b'PK\x06\x06', {
        'entries': (32, '<Q'),
        'directory size': (40, '<Q'),
        'directory offset': (48, '<Q')
    }),
}


def _headers(data: bytes, signature: bytes) -> List[int]:
    found, at = [], data.find(signature)
    while at >= 0:
        found.append(at)
        at = data.find(signature, at + 1)
    return found


def zip_field(rng, data):
    """An interesting value in one field of a local header, a central
    directory entry or the end record (sizes, offsets, method, name
    lengths, CRC)."""
    kind = rng.choice(sorted(_ZIP_HEADERS))
    signature, fields = _ZIP_HEADERS[kind]
    places = _headers(data, signature)
    if not places:
        return None
    at = rng.choice(places)
    name = rng.choice(sorted(fields))
    offset, fmt = fields[name]
    size = struct.calcsize(fmt)
    if at + offset + size > len(data):
        return None
    old = struct.unpack_from(fmt, data, at + offset)[0]
    value = rng.choice(INTERESTING_INTS + (old + 1, old - 1, old * 2))
    value %= 1 << (8 * size)
    if name == 'method':
        value = rng.choice((0, 1, 8, 9, 12, 14, 93, 99, value))
    out = bytearray(data)
    struct.pack_into(fmt, out, at + offset, value)
    return bytes(out), f'{kind} header at {at}: {name} {old} -> {value}'


def zip_members(data: bytes) -> List[Tuple[str, bytes]]:
    """The archive's member names and bytes (zipfile raises where they are
    damaged)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(i.filename, archive.read(i)) for i in archive.infolist()]


def zip_archive(members: Sequence[Tuple[str, bytes]],
                method=zipfile.ZIP_STORED):
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', method) as archive:
        for name, content in members:  # a fixed time: the same bytes
            archive.writestr(
                zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), content, method)
    return out.getvalue()


@rewrite
def zip_reorder(rng, data):
    """The members rewritten in another order, one removed, one twice, one
    added, renamed or deflated (correct CRCs)."""
    items = zip_members(data)
    op = rng.choice(
        ('shuffle', 'remove', 'duplicate', 'add', 'rename', 'deflate'))
    k = rng.randrange(len(items))
    name = items[k][0]
    prefix = items[0][0].split('/')[0]  # torch.save: the file's stem
    if op == 'shuffle':
        rng.shuffle(items)
    elif op == 'remove':
        del items[k]
    elif op == 'duplicate':
        items.insert(rng.randint(0, len(items)), items[k])
    elif op == 'add':
        added = rng.choice((f'{prefix}/data/99', f'{prefix}/data.pkl', '../x',
                            'other/data.pkl', f'{prefix}/'))
        items.insert(rng.randint(0, len(items)), (added, b'\x80\x02N.'))
    elif op == 'rename':
        new = rng.choice((f'{prefix}/data/9', f'{prefix}/data.pk',
                          'x/data.pkl', name.upper(), name + '/', 'x'))
        items[k] = (new, items[k][1])
        name = f'{name} -> {new}'
    else:
        return zip_archive(items,
                           zipfile.ZIP_DEFLATED), 'every member deflated'
    return zip_archive(items), f'{op} {name}'


def edit_member(data: bytes, suffix: str, edit: Callable[[bytes],
                                                         bytes]) -> bytes:
    """The archive written again (correct CRCs) with the member whose name
    ends with ``suffix`` replaced by ``edit(its bytes)``."""
    items = [(name, edit(content) if name.endswith(suffix) else content)
             for name, content in zip_members(data)]
    return zip_archive(items)


def in_member(pattern: str, inner: Sequence[Mutator]) -> Mutator:
    """A mutator that applies one of ``inner`` to the zip member whose name
    ends with ``pattern`` (one of them at random) and writes the archive
    again with correct CRCs, so the reader gets past the zip layer."""

    def mutate(rng, data):
        items = zip_members(data)
        k = rng.choice(
            [k for k, (name, _) in enumerate(items) if name.endswith(pattern)])
        mutator = rng.choice(inner)
        done = mutator(rng, items[k][1])
        if done is None:
            return None
        items[k] = (items[k][0], done[0])
        return zip_archive(
            items), f'{items[k][0]}: {mutator.__name__}: {done[1]}'

    mutate.__name__ = f'in_member_{pattern.strip("/.")}'
    return rewrite(mutate)


# ----------------------------------------------------------------------------
# pickle opcodes (data.pkl)
# ----------------------------------------------------------------------------
#: Globals to put in a GLOBAL opcode: the allow-listed ones in the wrong
#: places, torch's other rebuild functions, and code.
GLOBAL_NAMES = (
    'torch._utils\n_rebuild_tensor_v2', 'torch._utils\n_rebuild_parameter',
    'torch._utils\n_rebuild_qtensor', 'torch._utils\n_rebuild_sparse_tensor',
    'torch._utils\n_rebuild_wrapper_subclass',
    'torch._utils\n_rebuild_meta_tensor_no_storage',
    'torch._tensor\n_rebuild_from_type_v2', 'torch\nFloatStorage',
    'torch\nLongStorage', 'torch\nBoolStorage', 'torch\nHalfStorage',
    'torch\nUntypedStorage', 'torch\nSize', 'torch\ndevice', 'torch\nfloat32',
    'torch.nn.parameter\nParameter', 'collections\nOrderedDict',
    'numpy\ndtype', 'numpy\nndarray', 'numpy.core.multiarray\n_reconstruct',
    'numpy.core.multiarray\nscalar', 'numpy._core.multiarray\nscalar',
    '__builtin__\ngetattr', 'builtins\ngetattr', '__builtin__\nbytes',
    '__builtin__\nset', 'builtins\nslice', 'builtins\nbytearray',
    'argparse\nNamespace', 'mmengine.logging.history_buffer\nHistoryBuffer',
    '_codecs\nencode', 'builtins\nsetattr', 'builtins\neval', 'os\nsystem',
    'posix\nsystem', 'copyreg\n_reconstructor', 'builtins\nobject')

#: Whole opcodes to insert (protocol 0-5).
OPCODES = (b'(', b')', b'.', b'0', b'1', b'2', b'N', b'\x88', b'\x89', b'R',
           b'b', b's', b'u', b't', b'l', b'e', b'a', b'd', b'}', b']', b'\x81',
           b'\x85', b'\x86', b'\x87', b'\x93', b'\x94', b'\x8f', b'\x90',
           b'\x91', b'Q', b'i', b'o', b'h\x00', b'h\xff', b'q\x00',
           b'j\xff\xff\xff\x7f', b'K\x05', b'J\xff\xff\xff\xff', b'M\xff\xff',
           b'\x8a\x01\x80', b'\x82\x01', b'\x95' + bytes(8), b'\x8c\x01a',
           b'X\x01\x00\x00\x00a', b'C\x02ab', b'G' + bytes(8),
           b'\x96' + bytes(8), b'\x98', b'\x97')

#: Strings to put where a BINUNICODE stood: storage keys, devices, dtype
#: codes, codecs, names of methods and fields.
STRINGS = ('', '0', '9', '-1', '1e9', 'cuda', 'meta', 'cuda:99', 'xla', 'O',
           'V8', 'f8', '<U5', 'i8', '>f4', 'b', 'storage', 'latin1', 'utf-16',
           'rot13', 'zlib', 'base64', 'hex', '_log_history', '__class__',
           '__reduce__', '__init__', 'mean', 'update', 'statistics',
           'max_length', 'cfg', 'import os', 'x' * 5000, '\udcff',
           'archive/data.pkl')

_INT_OPS = {
    'BININT1': '<B',
    'BININT2': '<H',
    'BININT': '<i',
    'BINGET': '<B',
    'LONG_BINGET': '<I',
    'BINPUT': '<B',
    'LONG_BINPUT': '<I',
    'PROTO': '<B',
    'FRAME': '<Q'
}
_LENGTH_OPS = {
    'BINUNICODE': '<I',
    'SHORT_BINUNICODE': '<B',
    'BINBYTES': '<I',
    'SHORT_BINBYTES': '<B',
    'BINSTRING': '<i',
    'SHORT_BINSTRING': '<B',
    'BINUNICODE8': '<Q',
    'BINBYTES8': '<Q',
    'BYTEARRAY8': '<Q'
}


def pickle_ops(data: bytes) -> List[Tuple[str, int, int]]:
    """``(opcode name, start, end)`` of each opcode (pickletools raises on
    a stream it cannot walk)."""
    found = [(op.name, pos) for op, _, pos in pickletools.genops(data)]
    ends = [pos for _, pos in found[1:]] + [found[-1][1] + 1]
    return [(name, pos, end) for (name, pos), end in zip(found, ends)]


def _pick_op(rng, data, names=None):
    ops = pickle_ops(data)
    chosen = [op for op in ops if names is None or op[0] in names]
    return rng.choice(chosen) if chosen else None


def pickle_delete(rng, data):
    op = _pick_op(rng, data)
    return op and (data[:op[1]] + data[op[2]:], f'{op[0]} at {op[1]} deleted')


def pickle_duplicate(rng, data):
    op = _pick_op(rng, data)
    return op and (data[:op[2]] + data[op[1]:op[2]] + data[op[2]:],
                   f'{op[0]} at {op[1]} twice')


def pickle_swap(rng, data):
    ops = pickle_ops(data)
    k = rng.randrange(len(ops) - 2)
    j = k + 1 if rng.random() < 0.7 else rng.randrange(k + 1, len(ops) - 1)
    (a, a0, a1), (b, b0, b1) = ops[k], ops[j]
    return (data[:a0] + data[b0:b1] + data[a1:b0] + data[a0:a1] + data[b1:],
            f'{a} at {a0} swapped with {b} at {b0}')


def pickle_insert(rng, data):
    at = rng.choice(pickle_ops(data))[1]
    code = rng.choice(OPCODES)
    return data[:at] + code + data[at:], f'{code!r} inserted at {at}'


def pickle_global(rng, data):
    op = _pick_op(rng, data, ('GLOBAL', ))
    if not op:
        return None
    name = rng.choice(GLOBAL_NAMES)
    return (data[:op[1]] + b'c' + name.encode() + b'\n' + data[op[2]:],
            f'GLOBAL at {op[1]} -> {name!r}')


def pickle_int(rng, data):
    """An interesting value in an integer argument: a number, a memo index,
    the protocol, a frame length (tensor sizes, strides, offsets and
    storage sizes are such numbers)."""
    op = _pick_op(rng, data, _INT_OPS)
    if not op:
        return None
    name, start, end = op
    fmt = _INT_OPS[name]
    old = struct.unpack_from(fmt, data, start + 1)[0]
    value = rng.choice(INTERESTING_INTS + (old + 1, old - 1, old * 2, -old))
    if name in ('BININT1', 'BININT2', 'BININT') and rng.random() < 0.5:
        raw = b'J' + struct.pack('<i', max(-2**31, min(2**31 - 1, value)))
        if rng.random() < 0.5:  # LONG1: any size
            body = value.to_bytes(9, 'little', signed=True)
            raw = b'\x8a' + bytes([len(body)]) + body
    else:
        bits = 8 * struct.calcsize(fmt)
        value %= 1 << bits
        if fmt[1].islower() and value >= 1 << (bits - 1):
            value -= 1 << bits
        raw = data[start:start + 1] + struct.pack(fmt, value)
    return data[:start] + raw + data[end:], f'{name} at {start}: ' \
        f'{old} -> {value}'


def pickle_length(rng, data):
    """A wrong length prefix of a string or bytes argument (its data kept)."""
    op = _pick_op(rng, data, _LENGTH_OPS)
    if not op:
        return None
    name, start, end = op
    fmt = _LENGTH_OPS[name]
    old = struct.unpack_from(fmt, data, start + 1)[0]
    bits = 8 * struct.calcsize(fmt)
    largest = (1 << (bits - 1)) - 1
    value = rng.choice((0, old + 1, old - 1, old * 2, largest, -1))
    value %= 1 << bits
    if fmt[1].islower() and value >= 1 << (bits - 1):
        value -= 1 << bits
    out = bytearray(data)
    struct.pack_into(fmt, out, start + 1, value)
    return bytes(out), f'{name} at {start}: length {old} -> {value}'


def pickle_string(rng, data):
    """Another string where a BINUNICODE stood (storage key, device, dtype
    code, codec, method name ...)."""
    op = _pick_op(rng, data, ('BINUNICODE', 'SHORT_BINUNICODE'))
    if not op:
        return None
    text = rng.choice(STRINGS).encode('utf-8', 'surrogatepass')
    return (data[:op[1]] + b'X' + struct.pack('<I', len(text)) + text +
            data[op[2]:], f'{op[0]} at {op[1]} -> {text[:20]!r}')


#: Structure-aware mutators of a pickle stream.
PICKLE_MUTATORS = (pickle_delete, pickle_duplicate, pickle_swap, pickle_insert,
                   pickle_global, pickle_int, pickle_length, pickle_string)

# ----------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------
_RAW = '\x00raw{}\x00'  # a placeholder replaced by raw JSON text


class RawJSON(str):
    """JSON text put in place of a value (deep nesting, numbers with 5000
    digits, NaN), or of a dict key (a duplicate)."""


def nested(depth: int) -> RawJSON:
    """``depth`` nested lists: json's parser recurses once per level."""
    return RawJSON('[' * depth + ']' * depth)


#: Values put where another stood: other types, limits, non-finite and
#: huge numbers, deep nesting, a long string.
JSON_VALUES = (None, True, False, '', 'x', '0', '1e9', [], {}, [0], dict(a=1),
               0, -1, 1, 0.5, -0.0, 1e308, -1e308, 2**31, 2**63, 2**64, 10**20,
               RawJSON('NaN'), RawJSON('Infinity'), RawJSON('-Infinity'),
               RawJSON('1e999'), RawJSON('9' * 5000), nested(100000),
               'x' * 100000)


def dump_json(obj) -> bytes:
    """``obj`` as JSON, :class:`RawJSON` values (and keys) written as given."""
    raws: List[str] = []

    def hide(node):
        if isinstance(node, RawJSON):
            raws.append(node)
            return _RAW.format(len(raws) - 1)
        if isinstance(node, dict):
            return {
                hide(k) if isinstance(k, RawJSON) else k: hide(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [hide(v) for v in node]
        return node

    text = json.dumps(hide(obj))
    for k, raw in enumerate(raws):
        text = text.replace(json.dumps(_RAW.format(k)), raw, 1)
    return text.encode()


def pick_node(rng, root, stop: float = 0.3):
    """A random ``(container, key)`` reached by descending from ``root``
    (stopping at each level with probability ``stop``), or None."""
    node, found = root, None
    while isinstance(node, (dict, list)) and node:
        key = rng.choice(
            list(node) if isinstance(node, dict) else range(len(node)))
        found = (node, key)
        node = node[key]
        if rng.random() < stop:
            break
    return found


def _number_variant(rng, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return rng.choice(JSON_VALUES)
    return rng.choice((-value, value + 1, value - 1, value * 1000, 0,
                       float(value) + 0.5, str(value), [value], value * 1e300))


def json_tree(rng, data):
    """A structural edit at a random node: delete, duplicate, replace with
    a value of another type or an extreme one, a duplicate key, a value
    moved from elsewhere."""
    root = json.loads(data)
    picked = pick_node(rng, root)
    if picked is None:
        return None
    parent, key = picked
    op = rng.choice(
        ('delete', 'duplicate', 'replace', 'replace', 'number', 'move'))
    if op == 'delete':
        del parent[key]
    elif op == 'duplicate':
        if isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:  # the same key twice: json keeps the last
            parent[RawJSON(json.dumps(key))] = copy.deepcopy(parent[key])
            parent[key] = rng.choice(JSON_VALUES)
    elif op == 'replace':
        parent[key] = rng.choice(JSON_VALUES)
    elif op == 'number':
        parent[key] = _number_variant(rng, parent[key])
    else:
        other = pick_node(rng, root)
        if other is None:
            return None
        parent[key] = copy.deepcopy(other[0][other[1]])
    return dump_json(root), f'{op} [{key!r:.40}]'


def _coco_annotation(rng, data):
    """The parsed file and one of its annotations."""
    root = json.loads(data)
    return root, rng.choice(root['annotations'])


def _coco_image(root, ann) -> dict:
    found = [
        i for i in root.get('images', [])
        if isinstance(i, dict) and i.get('id') == ann.get('image_id')
    ]
    return found[0] if found else dict(height=64, width=64)


def coco_rle(rng, data):
    """An annotation's mask as an RLE: valid for its image, or with counts
    that add up to another size, negative, malformed, a size that is not
    its image's (huge, zero, swapped); crowd or not."""
    root, ann = _coco_annotation(rng, data)
    img = _coco_image(root, ann)
    height, width = img.get('height'), img.get('width')
    if not (isinstance(height, int) and isinstance(width, int)
            and 0 < height * width < 10**7):
        return None
    total = height * width
    counts = [total // 3, total // 3, total - 2 * (total // 3)]
    size = [height, width]
    op = rng.choice(('valid', 'short', 'long', 'negative', 'string',
                     'bad string', 'size', 'floats'))
    if op == 'short':
        counts[-1] -= 1
    elif op == 'long':
        counts[-1] += rng.choice((1, 10**9))
    elif op == 'negative':
        counts = [total + 5, -5]
    elif op == 'string':  # pycocotools' compressed form of the counts
        import numpy as np
        import pycocotools.mask as mask_utils
        mask = np.zeros((height, width), np.uint8, order='F')
        mask[:height // 2] = 1
        counts = mask_utils.encode(mask)['counts'].decode()
        if rng.random() < 0.5:
            counts = counts[:-1]
    elif op == 'bad string':
        counts = rng.choice(('', ' ', '\x7f\x7f', 'ab', '0' * 100000))
    elif op == 'size':
        size = rng.choice(
            ([width, height], [0, 0], [100000,
                                       100000], [height], [height, width,
                                                           3], 'x'))
    elif op == 'floats':
        counts = [float(c) for c in counts]
    ann['segmentation'] = dict(size=size, counts=counts)
    ann['iscrowd'] = rng.choice((0, 1, 1))
    return dump_json(root), f'RLE ({op}, iscrowd {ann["iscrowd"]}) for ' \
        f'annotation {ann.get("id")!r}'


def coco_polygon(rng, data):
    """An annotation's polygons with 0-2 points, an odd count, parts that
    are not numbers, an empty part, or no polygon at all."""
    root, ann = _coco_annotation(rng, data)
    polygon = [1.0, 1.0, 20.0, 1.0, 20.0, 20.0]
    op = rng.choice(('0 points', '1 point', '2 points', 'odd', 'strings',
                     'nan', 'empty part', 'none', 'flat', 'nested'))
    ann['segmentation'] = {
        '0 points': [[]],
        '1 point': [polygon[:2]],
        '2 points': [polygon[:4]],
        'odd': [polygon[:5]],
        'strings': [['1', '2', '3', '4', '5', '6']],
        'nan': [polygon[:4] + [RawJSON('NaN'), 3.0]],
        'empty part': [polygon, []],
        'none': [],
        'flat': polygon,
        'nested': [[polygon]],
    }[op]
    return dump_json(root), f'polygon ({op}) of annotation ' \
        f'{ann.get("id")!r}'


def coco_ids(rng, data):
    """Ids that collide: an annotation's, an image's or a category's id set
    to another one's; an annotation moved to another image or category;
    an id of another type (string, float)."""
    root = json.loads(data)
    section = rng.choice(('annotations', 'images', 'categories'))
    entries = [e for e in root[section] if isinstance(e, dict)]
    entry, other = rng.choice(entries), rng.choice(entries)
    key = rng.choice(('id', ) * 3 + (
        ('image_id', 'category_id') if section == 'annotations' else ()))
    old = entry.get(key)
    entry[key] = rng.choice((other.get('id'), other.get(key), str(old),
                             float(old) if _is_number(old) else 0.5, None))
    return dump_json(root), f'{section} {key} {old!r} -> {entry[key]!r}'


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Structure-aware mutators of a COCO annotation file.
COCO_MUTATORS = (coco_rle, coco_polygon, coco_ids)


def json_padding(limit: int) -> Mutator:
    """A mutator that pads the file with whitespace beyond ``limit`` bytes
    (a huge file that is otherwise valid)."""

    def json_huge(rng, data):
        return data + b' ' * (limit + 1 - len(data)), f'padded to {limit} + 1'

    return json_huge


# ----------------------------------------------------------------------------
# XML
# ----------------------------------------------------------------------------
#: Texts put in an element: not numbers, huge numbers, other digits.
XML_TEXTS = ('', ' ', 'abc', '-5', '0', '1e400', 'nan', 'inf', '0x10', '1_000',
             '\u0663', '12.7', '9' * 5000, '1e9', '-1e9', 'person', 'dog ',
             '<', '\u00e9')
#: Tags put on an element.
XML_TAGS = ('object', 'name', 'bndbox', 'xmin', 'ymin', 'xmax', 'ymax', 'size',
            'width', 'height', 'depth', 'difficult', 'truncated', 'filename',
            'annotation', 'x')


def _elements(root: ET.Element) -> List[Tuple[ET.Element, ET.Element]]:
    """``(parent, child)`` of every element below ``root``."""
    return [(p, c) for p in root.iter() for c in p]


def xml_tree(rng, data):
    """A structural edit of an element: removed, duplicated, text replaced,
    renamed, moved to the root, wrapped, emptied."""
    root = ET.fromstring(data)
    pairs = _elements(root)
    if not pairs:
        return None
    parent, child = rng.choice(pairs)
    op = rng.choice(('remove', 'duplicate', 'text', 'text', 'tag', 'move',
                     'wrap', 'clear'))
    if op == 'remove':
        parent.remove(child)
    elif op == 'duplicate':
        parent.insert(list(parent).index(child), copy.deepcopy(child))
    elif op == 'text':
        child.text = rng.choice(XML_TEXTS)
    elif op == 'tag':
        child.tag = rng.choice(XML_TAGS)
    elif op == 'move':
        parent.remove(child)
        root.append(child)
    elif op == 'wrap':
        wrapper = ET.Element(rng.choice(XML_TAGS))
        parent.insert(list(parent).index(child), wrapper)
        parent.remove(child)
        wrapper.append(child)
    else:
        child.clear()
    return ET.tostring(root), f'{op} <{child.tag}>'


def _xml_body(data: bytes) -> bytes:
    """The document without its XML declaration."""
    return data.split(b'?>', 1)[1] if data.startswith(b'<?xml') else data


#: A DOCTYPE whose entity ``l9`` expands to 10**9 "lol"s.
BILLION_LAUGHS = '<!DOCTYPE annotation [<!ENTITY l0 "lol">' + ''.join(
    f'<!ENTITY l{k} "{"&l%d;" % (k - 1) * 10}">' for k in range(1, 10)) + ']>'


def with_entity(data: bytes, doctype: str) -> bytes:
    """An XML document with ``doctype`` before it and its entity ``l9``
    used in the first text."""
    body = _xml_body(data)
    end = body.find(b'</', body.find(b'>') + 1)
    return doctype.encode() + body[:end] + b'&l9;' + body[end:]


def xml_entities(rng, data):
    """A DOCTYPE whose entities expand exponentially ("billion laughs"),
    name a file or a URL, or recurse; one is used in the first text."""
    doctype = rng.choice(
        (BILLION_LAUGHS,
         '<!DOCTYPE annotation [<!ENTITY l9 SYSTEM "file:///etc/passwd">]>',
         '<!DOCTYPE annotation [<!ENTITY l9 SYSTEM "http://127.0.0.1:9/x">]>',
         '<!DOCTYPE annotation [<!ENTITY l8 "&l9;"><!ENTITY l9 "&l8;">]>'))
    return with_entity(data, doctype), doctype[:60]


def nested_xml(data: bytes, depth: int) -> bytes:
    """The document with ``depth`` nested elements around the first
    character after its root's start tag."""
    body = _xml_body(data)
    at = body.find(b'>') + 1
    return (body[:at] + b'<x>' * depth + body[at:at + 1] + b'</x>' * depth +
            body[at + 1:])


def xml_nesting(rng, data):
    """Thousands of nested elements inside the root."""
    depth = rng.choice((1000, 20000))
    return nested_xml(data, depth), f'{depth} nested elements'


def xml_encoding(rng, data):
    """An XML declaration that does not match the bytes."""
    declared = rng.choice(('utf-16', 'latin-1', 'ascii', 'ebcdic', 'x'))
    return (f'<?xml version="1.0" encoding="{declared}"?>'.encode() +
            _xml_body(data), f'declared {declared}')


XML_MUTATORS = (xml_tree, xml_tree, xml_entities, xml_nesting, xml_encoding)


# ----------------------------------------------------------------------------
# PNG
# ----------------------------------------------------------------------------
def png_chunks(data: bytes) -> Optional[List[Tuple[bytes, bytes]]]:
    """``(type, data)`` of each chunk, or None for a damaged layout."""
    if not data.startswith(PNG_MAGIC):
        return None
    chunks, at = [], len(PNG_MAGIC)
    while at + 12 <= len(data):
        length, kind = struct.unpack_from('>I4s', data, at)
        if at + 12 + length > len(data):
            return None
        chunks.append((kind, data[at + 8:at + 8 + length]))
        at += 12 + length
    return chunks if at == len(data) else None


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One chunk with its length and a correct CRC."""
    return struct.pack('>I', len(body)) + kind + body + struct.pack(
        '>I', zlib.crc32(kind + body))


def png_file(chunks: Sequence[Tuple[bytes, bytes]]) -> bytes:
    """A PNG made of ``chunks`` (correct CRCs)."""
    return PNG_MAGIC + b''.join(png_chunk(k, b) for k, b in chunks)


_IHDR_FIELDS = {
    'width': (0, '>I'),
    'height': (4, '>I'),
    'bit depth': (8, 'B'),
    'colour type': (9, 'B'),
    'compression': (10, 'B'),
    'filter': (11, 'B'),
    'interlace': (12, 'B')
}


@rewrite
def png_header(rng, data):
    """Another width, height, bit depth, colour type, compression, filter
    or interlace method in IHDR (CRC made right)."""
    chunks = png_chunks(data)
    if not chunks or chunks[0][0] != b'IHDR' or len(chunks[0][1]) != 13:
        return None
    name = rng.choice(sorted(_IHDR_FIELDS))
    offset, fmt = _IHDR_FIELDS[name]
    if fmt == 'B':
        value = rng.choice((0, 1, 2, 3, 4, 6, 7, 8, 16, 255))
    else:
        value = rng.choice(
            (0, 1, 63, 65, 100000, 2**31 - 1, 2**31, 2**32 - 1)) % 2**32
    body = bytearray(chunks[0][1])
    struct.pack_into(fmt, body, offset, value)
    chunks[0] = (b'IHDR', bytes(body))
    return png_file(chunks), f'IHDR {name} = {value}'


@functools.lru_cache()
def _foreign_chunks() -> tuple:
    """Chunks to insert: critical and ancillary, known or not, two whose
    text inflates a thousandfold."""
    return ((b'PLTE', bytes(range(256)) * 3), (b'tRNS', b'\x00'),
            (b'abCD', b'x'), (b'ABCD', b'x'), (b'tEXt', b'k\x00v'),
            (b'IDAT', zlib.compress(b'')), (b'IEND', b''), (b'sBIT', b'\x08'),
            (b'iCCP', b'p\x00\x00' + zlib.compress(bytes(10**5))),
            (b'zTXt', b'k\x00\x00' + zlib.compress(bytes(10**7))))


@rewrite
def png_chunk_order(rng, data):
    """A chunk removed, duplicated, moved, or a foreign one inserted
    (critical or ancillary, known or not); CRCs right."""
    chunks = png_chunks(data)
    if not chunks:
        return None
    k = rng.randrange(len(chunks))
    op = rng.choice(('remove', 'duplicate', 'move', 'insert'))
    kind = chunks[k][0]
    if op == 'remove':
        del chunks[k]
    elif op == 'duplicate':
        chunks.insert(k, chunks[k])
    elif op == 'move':
        chunks.insert(rng.randrange(len(chunks)), chunks.pop(k))
    else:
        kind, body = rng.choice(_foreign_chunks())
        chunks.insert(k, (kind, body))
    return png_file(chunks), f'{op} {kind!r}'


@rewrite
def png_chunk_data(rng, data):
    """A byte mutation inside one chunk's data, CRC made right (the
    decoder, not the CRC check, meets it)."""
    chunks = png_chunks(data)
    if not chunks:
        return None
    k = rng.randrange(len(chunks))
    mutator = rng.choice((flip_bit, set_byte, set_int, delete_bytes, truncate))
    done = mutator(rng, chunks[k][1])
    if done is None:
        return None
    chunks[k] = (chunks[k][0], done[0])
    return png_file(chunks), f'{chunks[k][0]!r}: {done[1]}'


def _idat(chunks) -> bytes:
    return b''.join(body for kind, body in chunks if kind == b'IDAT')


@rewrite
def png_pixels(rng, data):
    """The inflated image data mutated (a filter byte, a pixel, rows cut
    or added) and compressed again: a valid zlib stream with other or too
    few or too many rows."""
    chunks = png_chunks(data)
    if not chunks:
        return None
    raw = zlib.decompress(_idat(chunks))
    mutator = rng.choice((set_byte, flip_bit, truncate, duplicate_chunk))
    done = mutator(rng, raw)
    if done is None:
        return None
    first = next(k for k, (kind, _) in enumerate(chunks) if kind == b'IDAT')
    rest = [c for c in chunks if c[0] != b'IDAT']
    rest.insert(first, (b'IDAT', zlib.compress(done[0])))
    return png_file(rest), f'pixels: {done[1]}'


def png_bomb(side: int, kind: str = 'gray') -> bytes:
    """A PNG declaring ``side x side`` pixels; ``kind`` 'gray': all its
    rows of zeros (a real decompression bomb: ``side**2`` bytes inflate
    from about ``side**2 / 1000``), 'short': a few bytes of image data."""
    ihdr = struct.pack('>IIBBBBB', side, side, 8, 0, 0, 0, 0)
    if kind == 'gray':
        rows = zlib.compressobj(9)
        row = bytes(side + 1)
        body = b''.join(rows.compress(row) for _ in range(side))
        body += rows.flush()
    else:
        body = zlib.compress(bytes(side + 1) * 4)
    return png_file([(b'IHDR', ihdr), (b'IDAT', body), (b'IEND', b'')])


# ----------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------
def _status_kib(pid: str, key: str) -> int:
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak() -> None:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux; where
    that is not allowed, the peak of the process so far is compared)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def _quiet_child() -> None:
    """The child prints nothing: its verdicts go through the pipe (mmengine
    logs each checkpoint read; libpng prints its errors)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    from mmengine.logging import MMLogger
    for logger in (logging.getLogger('mmengine'),
                   MMLogger.get_current_instance()):
        for handler in logger.handlers:  # targets add their own later
            handler.setLevel(logging.CRITICAL + 1)


def _child(target, make: Callable[[int], Mutant], start: int, count: int,
           pipe: int, stack_file) -> None:
    """Judge mutants ``start`` .. ``count - 1``, one JSON line each on
    ``pipe`` (``start`` before a mutant runs, ``done`` after)."""

    def send(**message):
        os.write(pipe, (json.dumps(message) + '\n').encode())

    faulthandler.enable(stack_file)  # SIGABRT (a hang), SIGSEGV: the stack
    _quiet_child()
    for index in range(start, count):
        send(start=index)
        try:
            mutant = make(index)
        except Exception:  # noqa: BLE001 - a bug of the fuzzer itself
            send(
                done=index, kind='fuzzer error', detail=traceback.format_exc())
            continue
        _reset_peak()
        before = _status_kib('self', 'VmRSS')
        began = time.monotonic()
        try:
            outcome = target.check(mutant)
        except Exception as err:  # noqa: BLE001 - what the test looks for
            frames = traceback.format_exception(err)
            outcome = Outcome('traceback', ''.join(frames[-6:]))
        grown = (_status_kib('self', 'VmHWM') - before) / 1024
        if grown > RSS_LIMIT_MIB:
            outcome = Outcome(
                'memory', f'peak RSS grew by {grown:.0f} MiB (limit '
                f'{RSS_LIMIT_MIB}); verdict otherwise: {outcome.kind} '
                f'{outcome.detail[:200]}')
        send(
            done=index,
            kind=outcome.kind,
            detail=outcome.detail,
            seconds=time.monotonic() - began)


def _watch(pid: int, pipe: int, stack_path: str, report: Report,
           start: int) -> int:
    """Read the child's verdicts into ``report``; kill it on a hang or a
    memory bomb. Returns the index to go on from."""
    buffered, current = b'', start
    deadline = time.monotonic() + TIME_LIMIT_S
    base_rss = _status_kib(str(pid), 'VmRSS')
    while True:
        ready, _, _ = select.select([pipe], [], [], 0.1)
        if ready:
            chunk = os.read(pipe, 65536)
            if not chunk:
                break
            buffered += chunk
            *lines, buffered = buffered.split(b'\n')
            for line in lines:
                message = json.loads(line)
                if 'start' in message:
                    current = message['start']
                    deadline = time.monotonic() + TIME_LIMIT_S
                else:
                    _record(report, message['done'], message['kind'],
                            message['detail'])
                    report.slowest = max(report.slowest,
                                         (message['seconds'], message['done']))
                    current = message['done'] + 1
        rss = _status_kib(str(pid), 'VmRSS')
        if rss - base_rss > RSS_KILL_MIB * 1024:
            os.kill(pid, signal.SIGKILL)
            _record(
                report, current, 'memory', f'RSS over {RSS_KILL_MIB} '
                f'MiB more than at the start: killed')
            os.waitpid(pid, 0)
            return current + 1
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGABRT)  # faulthandler writes the stack
            time.sleep(1)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            _record(
                report, current, 'hang', f'still running after '
                f'{TIME_LIMIT_S} s; stack:\n{_read(stack_path)}')
            return current + 1
    _, status = os.waitpid(pid, 0)
    if current < report.count and (os.WIFSIGNALED(status)
                                   or os.WEXITSTATUS(status)):
        _record(
            report, current, 'crash', f'the child died (status '
            f'{status}); stack:\n{_read(stack_path)}')
        return current + 1
    return current


def _read(path: str) -> str:
    with open(path, errors='replace') as f:
        return f.read()[-3000:]


def _record(report: Report, index: int, kind: str, detail: str) -> None:
    report.kinds[kind] += 1
    report.last = Outcome(kind, detail)
    if kind not in PASSING:
        report.failures.append(dict(index=index, kind=kind, detail=detail))


def _judge_in_children(target, make: Callable[[int], Mutant],
                       report: Report) -> None:
    """Judge mutants ``make(0)`` .. ``make(report.count - 1)`` in forked
    children (a new one after a hang, a memory kill or a crash)."""
    index = 0
    with tempfile.TemporaryDirectory(prefix='slak_mm_fuzz_') as tmp:
        while index < report.count:
            stack_path = os.path.join(tmp, f'stack{index}.txt')
            read_end, write_end = os.pipe()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child: never returns into the caller
                os.close(read_end)
                try:
                    with open(stack_path, 'w') as stack_file:
                        _child(target, make, index, report.count, write_end,
                               stack_file)
                finally:
                    os._exit(0)
            os.close(write_end)
            try:
                index = _watch(pid, read_end, stack_path, report, index)
            finally:
                os.close(read_end)


def run(target,
        count: int,
        seed: int = 0,
        out_dir: Optional[str] = None) -> Report:
    """Judge ``count`` mutants of ``target`` in forked children.

    Args:
        target: ``name``, ``base``, ``mutators`` (see :func:`make_mutant`)
            and ``check(mutant) -> Outcome`` (exceptions it lets through
            are ``traceback`` failures).
        count (int): How many mutants.
        seed (int): The run's seed.
        out_dir (str, optional): Where to save each failing mutant
            (``TARGET-SEED-INDEX.bin`` and a ``.txt`` with its verdict).

    Returns:
        Report: Verdicts by kind; failures with index, detail, mutations.
    """
    report = Report(target.name, seed, count)
    began = time.monotonic()
    _judge_in_children(target, functools.partial(make_mutant, target, seed),
                       report)
    report.seconds = time.monotonic() - began
    for failure in report.failures:
        mutant = make_mutant(target, seed, failure['index'])
        failure['how'] = '; '.join(mutant.how)
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
            stem = os.path.join(out_dir,
                                f'{target.name}-{seed}-{failure["index"]}')
            with open(stem + '.bin', 'wb') as f:
                f.write(mutant.data)
            with open(stem + '.txt', 'w') as f:
                f.write(json.dumps(failure, indent=1))
    return report


def judge(target, data: bytes) -> Outcome:
    """The verdict on one given file (a minimized finding), reached as in
    a run: in a forked child, within the time and memory bounds.

    Args:
        target: As for :func:`run`.
        data (bytes): The file (counted as damaged: only the unmutated
            result or a refusal passes for a checkpoint).

    Returns:
        Outcome: The verdict.
    """
    report = Report(target.name, 0, 1)
    _judge_in_children(
        target, lambda index: Mutant(data, ['given'], True, target.base),
        report)
    return report.last


def mutant_count(default: int) -> int:
    """Mutants per target: ``$SLAK_MM_FUZZ_MUTANTS`` or ``default``."""
    return int(os.environ.get(MUTANTS_ENV, default))


def run_seed() -> int:
    """The run's seed: ``$SLAK_MM_FUZZ_SEED`` or 0."""
    return int(os.environ.get(SEED_ENV, 0))
