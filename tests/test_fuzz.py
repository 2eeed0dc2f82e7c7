"""Seeded mutation fuzzing of every file type slak_mm reads (issue 22,
section 5): checkpoints (zip structure, pickle opcodes, members), COCO JSON,
PASCAL VOC XML, PNG label maps and the depthwise conv tuning cache.

Each target below runs the project's real entry point on every mutant
(:mod:`tests.fuzzing` makes the mutants and runs them in a forked child)
and judges the result:

* checkpoints: :func:`slak_mm.checkpoint.load_checkpoint_safely` and
  mmengine's ``CheckpointLoader.load_checkpoint`` (as ``import slak_mm``
  sets it up). Passing: the unmutated checkpoint; a ``CheckpointError`` of
  one line naming the file; or a checkpoint of the allowed types only,
  whose tensors can all be read, from a mutant whose mutations rewrote the
  archive with correct CRCs (a well-formed file that says something else).
  Damage done after the last rewrite (or to the base file) must be
  refused or change nothing: a different checkpoint is a silent change.
* COCO / VOC: :func:`slak_mm.datasets.check_dataset_files` on the demo
  configs (with :func:`~slak_mm.datasets.install_data_checks`, as the tools
  run them), then mmdet's real dataset and train pipeline. Passing: a
  one-line ``DatasetError`` naming the file, or a start summary whose
  images, kept and ignored instances equal what the dataset yields (a
  changed count the summary states is a result, a count it does not state
  is a silent change; an exception from mmdet after the check passed is a
  traceback).
* PNG label maps: the decode-time check (the pipeline's
  ``CheckedLoadAnnotations``) and ``check_dataset_files`` on the demo
  segmentation config. Passing: a one-line ``DatasetError`` naming the
  file; the unmutated labels; or other labels from a valid PNG (one that
  libpng, which checks every CRC, the header, the chunk order and the zlib
  stream, decodes).
* the tuning cache: ``slak_mm.ops.tuning_cache.read_file``. Passing: the
  records (each with the record fields' types), or nothing with exactly one
  warning, or nothing without one for a file of other versions (stale).

Bounds, for every mutant: :data:`tests.fuzzing.TIME_LIMIT_S` (10 s) of run
time and :data:`tests.fuzzing.RSS_LIMIT_MIB` (100 MiB) of peak RSS growth
(the child's VmHWM, reset before each mutant, over its RSS before it).

The suite runs a few hundred mutants per target (seed 0; about 6 s on an
idle 2-core machine); ``make fuzz`` runs ``SLAK_MM_FUZZ_MUTANTS`` (2000) of
each with ``SLAK_MM_FUZZ_SEED``. Every failure found is a case of
:func:`test_found_by_fuzzing`.
"""
import argparse
import codecs
import functools
import glob
import io
import json
import logging
import os
import os.path as osp
import re
import shutil
import warnings
import zlib

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub, MMLogger

from slak_mm.checkpoint import CheckpointError, load_checkpoint_safely
from slak_mm.config import load_config
from slak_mm.datasets import (DatasetError, check_dataset_files,
                              install_data_checks)
from slak_mm.ops import tuning_cache
from tests import fuzzing
from tests.checkpoint.test_numpy_forgery import _Reduce
from tests.common import (DEMO_COCO_CONFIG, DEMO_CONFIG, DEMO_VOC_CONFIG,
                          tiny_slak)
from tests.datasets.test_checks import yielded
from tests.fuzzing import Outcome, refused, weighted

#: Mutants per target in the suite (about 6 s in all on 2 idle cores).
SUITE_MUTANTS = dict(
    checkpoint=300, coco=60, voc=40, png=250, tuning_cache=150)


# ----------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------
def tiny_checkpoint() -> dict:
    """An mmengine-style training checkpoint, small: meta (with a numpy
    seed and config text), four tensors of a tiny SLaK, and a message hub
    whose ``HistoryBuffer`` holds numpy arrays."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        state = dict(list(tiny_slak().state_dict().items())[:4])
    hub = MessageHub('fuzz_checkpoint')  # not made the current instance
    for loss in (1.0, 2.0):
        hub.update_scalar('train/loss', loss)
    hub.update_info('iter', 3)
    return dict(
        meta=dict(
            iter=3, epoch=0, seed=np.int64(7), cfg="model = dict(type='x')\n"),
        state_dict=state,
        message_hub=hub.state_dict())


#: What may be in a loaded checkpoint (the allow-list's types).
_LEAVES = (str, bytes, int, float, bool, type(None), torch.Tensor, torch.Size,
           torch.dtype, torch.device, np.ndarray, np.generic, np.dtype,
           torch.storage.TypedStorage, torch.UntypedStorage)

#: Modules of the allowed globals, which a pickle may also leave as values
#: (``getattr(HistoryBuffer, 'min')``, a class as a dict key).
_GLOBALS_FROM = ('torch', 'collections', 'builtins', 'argparse', '_codecs',
                 'mmengine.logging.history_buffer', 'slak_mm.checkpoint')


def _allowed_global(obj) -> bool:
    """An allowed global itself (a class as a dict key ...), or what
    torch's own unpickler makes of one (a ``StorageType``)."""
    module = getattr(obj, '__module__', None) or ''
    return callable(obj) and module.startswith(_GLOBALS_FROM) or \
        type(obj).__module__.startswith('torch')


def _foreign(obj, depth=0):
    """The first value of a type outside the allow-list in ``obj`` (every
    tensor is read whole on the way), or None."""
    if isinstance(obj, torch.Tensor):
        obj.clone()  # reads every element: a view past its storage fails
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            return 'an object array'
        obj.copy()
    if isinstance(obj, _LEAVES) or depth > 400:
        return None
    if isinstance(obj, dict):
        items = [*obj.keys(), *obj.values()]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        items = list(obj)
    elif isinstance(obj, (HistoryBuffer, argparse.Namespace)):
        items = list(vars(obj).values())
    elif _allowed_global(obj):
        return None
    else:
        return f'{type(obj).__module__}.{type(obj).__qualname__}'
    for item in items:
        found = _foreign(item, depth + 1)
        if found:
            return found
    return None


def same(a, b) -> bool:
    """Whether two loaded objects are equal, tensors and arrays included
    (dtype, shape, strides and the bytes of their values: NaN is NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return (a.dtype, a.shape,
                a.stride()) == (b.dtype, b.shape, b.stride()) and bool(
                    torch.equal(_bytes_of(a), _bytes_of(b)))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and \
            a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (HistoryBuffer, argparse.Namespace)):
        return same(vars(a), vars(b))
    return bool(a == b)


def _bytes_of(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.reshape(-1).contiguous().view(torch.uint8)


class CheckpointTarget:
    """A ``torch.save`` file: byte damage, zip header fields, members
    reordered / removed / renamed, and the pickle's opcodes (data.pkl
    re-zipped with correct CRCs), the other members' bytes likewise."""
    name = 'checkpoint'
    mutators = (
        weighted(3, fuzzing.BYTE_MUTATORS) + weighted(2, [fuzzing.zip_field]) +
        weighted(1, [fuzzing.zip_reorder]) +
        weighted(5, [fuzzing.in_member('data.pkl', fuzzing.PICKLE_MUTATORS)]) +
        weighted(1, [
            fuzzing.in_member(name, fuzzing.BYTE_MUTATORS)
            for name in ('/byteorder', '/data/0', '/data/1', 'version',
                         '.storage_alignment')
        ]))

    def __init__(self, folder: str) -> None:
        self.path = osp.join(folder, 'fuzz.pth')
        torch.save(tiny_checkpoint(), self.path)
        with open(self.path, 'rb') as f:
            self.base = f.read()
        self.reference = load_checkpoint_safely(self.path)

    def _judge(self, loaded, mutant) -> Outcome:
        if same(loaded, self.reference):
            return Outcome('same')
        if mutant.damaged and not same(loaded, _load_or_none(mutant.intact)):
            return Outcome(
                'silent change', 'damaged after its last well-formed '
                'rewrite, the file loaded as another checkpoint')
        foreign = _foreign(loaded)
        if foreign:
            return Outcome('not allowed', f'loaded holding {foreign}')
        return Outcome('other', 'a well-formed file with other content')

    def check(self, mutant) -> Outcome:
        from mmengine.runner.checkpoint import CheckpointLoader
        with open(self.path, 'wb') as f:
            f.write(mutant.data)
        verdicts = []
        for read in (load_checkpoint_safely,
                     functools.partial(
                         CheckpointLoader.load_checkpoint,
                         map_location='cpu')):
            try:
                loaded = read(self.path)
            except CheckpointError as err:
                verdicts.append(refused(err, self.path))
            else:
                verdicts.append(self._judge(loaded, mutant))
        return _worst(verdicts)


def _load_or_none(data: bytes):
    """What the safe loader reads from ``data`` (None if it refuses)."""
    try:
        return load_checkpoint_safely(io.BytesIO(data))
    except CheckpointError:
        return None


def _worst(verdicts) -> Outcome:
    """The first failure, else a refusal, else the first verdict."""
    for verdict in verdicts:
        if verdict.failed:
            return verdict
    for verdict in verdicts:
        if verdict.kind == 'refused':
            return verdict
    return verdicts[0]


# ----------------------------------------------------------------------------
# detection annotations
# ----------------------------------------------------------------------------
_SUMMARY = re.compile(r': (\d+) images.*?, (\d+) \w+ kept(?:, (\d+) ignored)?')


class _Records(logging.Handler):
    """mmengine's log records while the block runs (the start summary)."""

    def __enter__(self):
        self.records = []
        self.logger = MMLogger.get_current_instance()
        self.logger.addHandler(self)
        return self.records

    def __exit__(self, *exc):
        self.logger.removeHandler(self)

    def emit(self, record):
        self.records.append(record.getMessage())


class DetectionTarget:
    """An annotation file of a detection dataset: the check's summary must
    be what mmdet's dataset and train pipeline yield."""

    def __init__(self, name, config, root, path, mutators, summary=None):
        self.name, self.path, self.mutators = name, path, mutators
        self.summary = summary or path  # the file the summary names
        self.cfg = load_config(config, {'data_root': root})
        install_data_checks(self.cfg)
        dataset = self.cfg.train_dataloader.dataset
        self.dataset = dataset.datasets[0] if 'datasets' in dataset \
            else dataset
        with open(path, 'rb') as f:
            self.base = f.read()
        self.reference = self.counts()
        assert self.reference[0] == self.reference[1], self.reference

    def counts(self):
        """(summary counts, yielded counts) of the file as it is."""
        with _Records() as records:
            check_dataset_files(self.cfg, ('train', ))
        lines = [r for r in records if f' {self.summary}: ' in r]
        found = _SUMMARY.search(lines[-1]) if lines else None
        said = found and tuple(int(n or 0) for n in found.groups())
        return said, yielded(self.dataset)

    def check(self, mutant) -> Outcome:
        with open(self.path, 'wb') as f:
            f.write(mutant.data)
        try:
            said, got = self.counts()
        except DatasetError as err:
            return refused(err, self.path)
        if said != got:
            return Outcome(
                'silent change', f'the summary says (images, '
                f'kept, ignored) = {said}; mmdet yields {got}')
        return Outcome('same' if got == self.reference[1] else 'other')


# ----------------------------------------------------------------------------
# label maps
# ----------------------------------------------------------------------------
@functools.lru_cache()
def _bombs():
    return (fuzzing.png_bomb(100000, 'short'), fuzzing.png_bomb(8000))


def png_bomb(rng, data):
    """A PNG declaring 100000 x 100000 pixels, or 8000 x 8000 zero pixels
    in 64 KB (a decompression bomb)."""
    bomb = rng.choice(_bombs())
    return bomb, f'{len(bomb)}-byte decompression bomb'


class LabelMapTarget:
    """A label map of the ADE20K demo data: checked before the run and
    where the pipeline decodes it."""
    name = 'png'
    mutators = (
        weighted(3, fuzzing.BYTE_MUTATORS) + weighted(4, [
            fuzzing.png_header, fuzzing.png_chunk_order,
            fuzzing.png_chunk_data, fuzzing.png_pixels
        ]) + weighted(0.3, [png_bomb]))

    def __init__(self, root: str) -> None:
        from mmseg.registry import TRANSFORMS
        self.cfg = load_config(DEMO_CONFIG, {'data_root': root})
        install_data_checks(self.cfg)
        dataset = self.cfg.train_dataloader.dataset
        loader = next(
            t for t in dataset.pipeline
            if t.type.endswith('CheckedLoadAnnotations'))
        self.transform = TRANSFORMS.build(loader)
        self.path = sorted(
            glob.glob(osp.join(root, 'annotations', 'training', '*.png')))[0]
        self.image = self.path.replace('annotations', 'images')[:-4] + '.jpg'
        with open(self.path, 'rb') as f:
            self.base = f.read()
        self.reference = self.decode()

    def decode(self) -> np.ndarray:
        results = dict(
            seg_map_path=self.path,
            img_path=self.image,
            ori_shape=(64, 64),
            seg_fields=[],
            reduce_zero_label=True)
        return self.transform.transform(results)['gt_seg_map']

    def check(self, mutant) -> Outcome:
        with open(self.path, 'wb') as f:
            f.write(mutant.data)
        verdicts = []
        try:  # first: the check that holds also without the pre-run scan
            labels = self.decode()
        except DatasetError as err:
            verdicts.append(refused(err, self.path))
        else:
            verdicts.append(self._judge(labels, mutant.data))
        try:
            check_dataset_files(self.cfg, ('train', ))
        except DatasetError as err:
            verdicts.append(refused(err, self.path))
        return _worst(verdicts)

    def _judge(self, labels, data) -> Outcome:
        if np.array_equal(labels, self.reference):
            return Outcome('same')
        # libpng allocates a chunk's length before it reads: where one runs
        # past the end, its answer (no) is known without that cost
        if fuzzing.png_chunks(data) is not None and cv2.imdecode(
                np.frombuffer(data, np.uint8),
                cv2.IMREAD_UNCHANGED) is not None:
            return Outcome('other', 'a valid PNG (to libpng) of other labels')
        return Outcome(
            'silent change', 'a PNG libpng refuses (it checks every CRC, '
            'the header, the zlib checksum) decoded to other labels')


# ----------------------------------------------------------------------------
# the tuning cache
# ----------------------------------------------------------------------------
#: A record's fields and their types (slak_mm/ops/tuning_cache.py).
RECORD_FIELDS = dict(
    choice=str, how=str, times=dict, failures=dict, seconds=(int, float))


def _record_problem(record) -> str:
    if not isinstance(record, dict) or not isinstance(
            record.get('choice'), str):
        return f'a record without a "choice" string: {record!r:.80}'
    for key, kind in RECORD_FIELDS.items():
        if key in record and not isinstance(record[key], kind):
            return f'a record whose {key!r} is {record[key]!r:.60}'
    for key in ('times', 'failures'):
        entries = record.get(key) or {}
        if not all(
                isinstance(k, str) and isinstance(v, (str, int, float))
                for k, v in entries.items()):
            return f'a record whose {key!r} is {entries!r:.60}'
    return ''


class TuningCacheTarget:
    """The depthwise conv tuning cache (a JSON file any process may have
    written, or anything else at its path)."""
    name = 'tuning_cache'
    #: A larger file is no cache of ours (the reader's bound).
    max_bytes = getattr(tuning_cache, 'MAX_CACHE_BYTES', 16 * 2**20)

    def __init__(self, folder: str) -> None:
        self.path = osp.join(folder, 'dwconv_tune.json')
        self.records = {
            'cpu|float32|1x8x16x16|k7':
            dict(
                choice='torch',
                how='measured',
                times=dict(torch=1e-4, fft=3e-4),
                failures=dict(triton='no GPU'),
                seconds=0.01),
            'cpu|float32|1x8x16x16|k13':
            'fft',  # format 1: a name
        }
        self.base = fuzzing.dump_json(
            dict(fingerprint=tuning_cache.fingerprint(), entries=self.records))
        self.mutators = (
            weighted(4, [fuzzing.json_tree]) +
            weighted(2, fuzzing.BYTE_MUTATORS) +
            weighted(0.2, [fuzzing.json_padding(self.max_bytes)]))

    def check(self, mutant) -> Outcome:
        with open(self.path, 'wb') as f:
            f.write(mutant.data)
        tuning_cache.clear()
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter('always')
            records = tuning_cache.read_file(self.path)
        if len(said) > 1:
            return Outcome(
                'warnings', f'{len(said)} warnings: '
                f'{[str(w.message) for w in said]}')
        if not isinstance(records, dict):
            return Outcome('not records', f'{type(records).__name__}')
        if said:
            message = str(said[0].message)
            if records or '\n' in message or self.path not in message:
                return Outcome('not one line', message)
            return Outcome('refused', message)
        if len(mutant.data) > self.max_bytes:
            return Outcome(
                'silent change', f'a {len(mutant.data)}-byte '
                f'file read without a word')
        problems = [_record_problem(r) for r in records.values()]
        if any(problems):
            return Outcome('bad record', next(p for p in problems if p))
        if not records:
            return self._stale(mutant.data)
        expected = {
            key: dict(choice=r, how='measured') if isinstance(r, str) else r
            for key, r in self.records.items()
        }
        return Outcome('same' if records == expected else 'other')

    def _stale(self, data) -> Outcome:
        """No records and no warning: allowed for a file of other versions
        or without entries."""
        try:
            stored = json.loads(data)
        except (ValueError, RecursionError):
            return Outcome('silent change', 'unparsable file ignored '
                           'without a word')
        if isinstance(stored, dict) and (stored.get('fingerprint')
                                         != tuning_cache.fingerprint()
                                         or stored.get('entries') == {}):
            return Outcome('same', 'stale')
        return Outcome('silent change', 'records ignored without a word')


# ----------------------------------------------------------------------------
# what the fuzzer found: each failure minimized, made from the base file
# ----------------------------------------------------------------------------
def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _central_entry(data: bytes, suffix: bytes) -> int:
    """Offset of the central directory entry of the member ``*suffix``."""
    at = data.find(b'PK\x01\x02')
    while not data[at + 46:at + 46 +
                   int.from_bytes(data[at + 28:at +
                                       30], 'little')].endswith(suffix):
        at = data.find(b'PK\x01\x02', at + 1)
    return at


def _set_field(data: bytes, at: int, value: int, size: int) -> bytes:
    return data[:at] + value.to_bytes(size, 'little') + data[at + size:]


def persistent_id_not_a_tuple(base):
    """The TUPLE of a storage's persistent id deleted: torch's
    persistent_load raised a bare AssertionError."""

    def edit(pickle):
        ops = fuzzing.pickle_ops(pickle)
        first = next(k for k, op in enumerate(ops) if op[0] == 'BINPERSID')
        _, start, end = [op for op in ops[:first] if op[0] == 'TUPLE'][-1]
        return pickle[:start] + pickle[end:]

    return fuzzing.edit_member(base, '/data.pkl', edit)


def opcode_torch_does_not_know(base):
    """An EXT1 opcode in front of data.pkl's STOP: the refusal blamed an
    unsafe global and advised --unsafe-load (a damaged file)."""

    def edit(pickle):
        return pickle[:-1] + b'\x82\x01' + pickle[-1:]

    return fuzzing.edit_member(base, '/data.pkl', edit)


def history_buffer_of_unequal_lengths(base):
    """HistoryBuffer is allowed; called with histories of two lengths its
    __init__ raised a bare AssertionError."""
    return _saved(dict(hub=_Reduce(HistoryBuffer, ([1.0], []))))


def codec_that_does_not_exist(base):
    """_codecs.encode (protocol 2 bytes) with the codec 'O': a bare
    LookupError."""
    return _saved(dict(x=_Reduce(codecs.encode, ('x', 'O'))))


def member_flagged_encrypted(base):
    """Flag bit 0 (encrypted) in data.pkl's directory entry: zipfile's
    RuntimeError escaped the structural check."""
    return _set_field(base, _central_entry(base, b'/data.pkl') + 8, 1, 2)


def refusal_naming_a_tensor(base):
    """bytes(tensor): the refusal quoted the tensor's repr, over two
    lines."""
    return _saved(dict(x=_Reduce(bytes, (torch.ones(2, 2), ))))


def member_marked_as_folder(base):
    """The DOS folder attribute on a storage's directory entry: torch read
    no data and returned the tensor's uninitialised memory, without a
    word (Python's CRC check reads the bytes and passes)."""
    return _set_field(base, _central_entry(base, b'/data/0') + 38, 0x10, 4)


def member_twice(base):
    """A storage in the zip twice, the first copy damaged: zipfile checks
    the CRC of the last, torch read the first (other weights, without a
    word)."""
    items = fuzzing.zip_members(base)
    name, content = next(item for item in items if item[0].endswith('/0'))
    items.append((name, content))
    data = fuzzing.zip_archive(items)
    at = data.index(content) + 5
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


def _in_coco(edit):

    def make(base):
        data = json.loads(base)
        edit(data)
        return fuzzing.dump_json(data)

    make.__name__ = edit.__name__
    return make


def a_number_of_5000_digits(data):
    data['annotations'][0]['area'] = fuzzing.RawJSON('9' * 5000)


def nested_100000_deep(data):
    data['info'] = fuzzing.nested(100000)


def annotations_not_a_list(data):
    data['annotations'] = 1.5


def categories_not_a_list(data):
    data['categories'] = 1.5


def a_category_without_id(data):
    del data['categories'][0]['id']


def an_image_id_that_is_a_list(data):
    data['annotations'][0]['image_id'] = [1]


def a_file_name_that_is_a_number(data):
    data['images'][0]['file_name'] = 7


def a_box_of_2_to_the_64(data):
    """mmdet's box tensor overflowed after the check passed."""
    data['annotations'][0]['bbox'][2] = 2**64


def a_polygon_point_at_1e308(data):
    """pycocotools crashed (a segfault, or gigabytes) rasterizing it."""
    data['annotations'][0]['segmentation'][0][0] = 1e308


def unknown_xml_encoding(base):
    return b'<?xml version="1.0" encoding="x"?>' + base.split(b'?>')[-1]


def billion_laughs(base):
    """Expat stops an expansion at 100 times the input: in a 700 KB file
    (100000 nested elements), the RSS grew by 305 MiB."""
    return fuzzing.with_entity(
        fuzzing.nested_xml(base, 100000), fuzzing.BILLION_LAUGHS)


def _other_labels(chunks) -> None:
    """A valid change first (one pixel of the first row), so that a PNG
    decoded in spite of the damage after it holds other labels."""
    raw = bytearray(zlib.decompress(chunks[1][1]))
    raw[1] = (raw[1] + 1) % 100
    chunks[1] = (b'IDAT', zlib.compress(bytes(raw)))


def _png_edit(edit):

    def make(base):
        chunks = fuzzing.png_chunks(base)
        _other_labels(chunks)
        edit(chunks)
        return fuzzing.png_file(chunks)

    make.__name__ = edit.__name__
    return make


def png_of_20_bytes(base):
    """The pre-run check unpacked an IHDR it did not have: struct.error."""
    return base[:20]


def decompression_bomb(base):
    """8000 x 8000 zero pixels in 64 KB: decoded (64 MB, 256 MB as int32
    labels) before its size was compared."""
    return _bombs()[1]


def _bytes_edit(edit):

    def make(base):
        return edit(_png_edit(lambda chunks: None)(base))

    make.__name__ = edit.__name__
    return make


def image_data_crc_wrong(data):
    """Pillow does not check IDAT's CRC."""
    end = data.index(b'IEND') - 4
    return data[:end - 4] + bytes(4) + data[end:]


def chunk_longer_than_the_file(data):
    """IDAT's length beyond the end of the file: Pillow read what was
    there."""
    idat = data.index(b'IDAT')
    return data[:idat - 4] + (4096 << 16).to_bytes(4, 'big') + data[idat:]


def compression_method_7(chunks):
    """An IHDR (CRC right) naming a compression method that does not
    exist."""
    chunks[0] = (b'IHDR', chunks[0][1][:10] + b'\x07' + chunks[0][1][11:])


def unknown_critical_chunk(chunks):
    chunks.insert(1, (b'ABCD', b'x'))


def palette_without_plte(chunks):
    chunks[0] = (b'IHDR', chunks[0][1][:9] + b'\x03' + chunks[0][1][10:])


def ihdr_twice(chunks):
    chunks.insert(1, chunks[0])


def no_iend(chunks):
    """A file cut between chunks."""
    chunks.pop()


def rows_missing(chunks):
    """A valid zlib stream of fewer rows: Pillow filled them with 0."""
    raw = zlib.decompress(chunks[1][1])
    chunks[1] = (b'IDAT', zlib.compress(raw[:-65]))


#: ``(target, minimized mutant, a part of its one-line refusal)``.
FOUND = [
    ('checkpoint', persistent_id_not_a_tuple, 'AssertionError'),
    ('checkpoint', history_buffer_of_unequal_lengths, 'AssertionError'),
    ('checkpoint', codec_that_does_not_exist, 'LookupError'),
    ('checkpoint', member_flagged_encrypted, 'is encrypted'),
    ('checkpoint', refusal_naming_a_tensor, 'tensor([[1., 1.], [1., 1.]]'),
    ('checkpoint', member_marked_as_folder, 'marked as a folder'),
    ('checkpoint', member_twice, 'is in the zip twice'),
    ('checkpoint', opcode_torch_does_not_know, 'holds opcode'),
    ('coco', _in_coco(a_number_of_5000_digits), 'Exceeds the limit'),
    ('coco', _in_coco(nested_100000_deep), 'nested too deeply'),
    ('coco', _in_coco(annotations_not_a_list), '"annotations" is not a list'),
    ('coco', _in_coco(categories_not_a_list), '"categories" is not a list'),
    ('coco', _in_coco(a_category_without_id), '"categories" lacks'),
    ('coco', _in_coco(an_image_id_that_is_a_list), 'integer id, image_id'),
    ('coco', _in_coco(a_file_name_that_is_a_number), '"file_name" string'),
    ('coco', _in_coco(a_box_of_2_to_the_64), 'a bbox of 4 numbers'),
    ('coco', _in_coco(a_polygon_point_at_1e308), 'an image size outside'),
    ('voc', unknown_xml_encoding, 'unknown encoding: x'),
    ('voc', billion_laughs, 'a DOCTYPE'),
    ('png', png_of_20_bytes, 'truncated'),
    ('png', decompression_bomb, 'is 8000x8000 (WxH) but its image'),
    ('png', _bytes_edit(image_data_crc_wrong), 'fails its CRC check'),
    ('png', _png_edit(compression_method_7), 'compression 7'),
    ('png', _png_edit(unknown_critical_chunk), "critical PNG chunk b'ABCD'"),
    ('png', _png_edit(palette_without_plte), 'without its PLTE'),
    ('png', _png_edit(ihdr_twice), "chunk b'IHDR' out of place"),
    ('png', _png_edit(no_iend), 'ends before its IEND'),
    ('png', _png_edit(rows_missing), 'inflates to 4095 bytes'),
    ('png', _bytes_edit(chunk_longer_than_the_file), 'past the end of'),
]


@pytest.fixture(scope='module')
def targets(clean, tmp_path_factory):
    """``targets(name)``: the target, made once for the module."""
    made = {}

    def target(name):
        if name not in made:
            made[name] = make_target(name, clean,
                                     str(tmp_path_factory.mktemp(name)))
        return made[name]

    return target


@pytest.mark.parametrize(
    'name,make,expected', FOUND, ids=[m.__name__ for _, m, _ in FOUND])
def test_found_by_fuzzing(name, make, expected, targets):
    """Every failure the fuzzer found, minimized: now one line naming the
    file (within the time and memory bounds of a run)."""
    target = targets(name)
    verdict = fuzzing.judge(target, make(target.base))
    assert verdict.kind == 'refused' and expected in verdict.detail, verdict


# ----------------------------------------------------------------------------
# the runs
# ----------------------------------------------------------------------------
def make_target(name: str, roots: dict, folder: str):
    """The target ``name`` on a copy of the data in ``roots`` under
    ``folder``."""
    roots = {
        kind: shutil.copytree(root, osp.join(folder, kind))
        for kind, root in roots.items()
    }
    if name == 'checkpoint':
        return CheckpointTarget(folder)
    if name == 'tuning_cache':
        return TuningCacheTarget(folder)
    if name == 'png':
        return LabelMapTarget(roots['ade20k'])
    if name == 'coco':
        root = roots['coco']
        return DetectionTarget(
            'coco', DEMO_COCO_CONFIG, root,
            osp.join(root, 'annotations', 'instances_train2017.json'),
            weighted(5, [fuzzing.json_tree]) +
            weighted(3, fuzzing.COCO_MUTATORS) +
            weighted(1, fuzzing.BYTE_MUTATORS))
    root = roots['voc']
    return DetectionTarget(
        'voc',
        DEMO_VOC_CONFIG,
        root,
        sorted(glob.glob(osp.join(root, 'VOC2007', 'Annotations',
                                  '*.xml')))[0],
        weighted(6, fuzzing.XML_MUTATORS) + weighted(2, fuzzing.BYTE_MUTATORS),
        summary=osp.join(root, 'VOC2007', 'ImageSets', 'Main', 'trainval.txt'))


@pytest.mark.parametrize('name', sorted(SUITE_MUTANTS))
def test_fuzz(name, clean, tmp_path):
    """Every mutant ends in a passing verdict within the bounds (see the
    module doc); ``make fuzz`` prints each target's summary."""
    target = make_target(name, clean, str(tmp_path))
    report = fuzzing.run(
        target,
        fuzzing.mutant_count(SUITE_MUTANTS[name]),
        fuzzing.run_seed(),
        out_dir=os.environ.get(fuzzing.OUT_ENV))
    print(report.summary())
    assert not report.failures, report.describe_failures()
