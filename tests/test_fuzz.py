"""Seeded mutation fuzzing of every file type slak_mm reads (issue 22,
section 5): checkpoints (zip structure, pickle opcodes, members), COCO JSON,
PASCAL VOC XML, PNG label maps and the depthwise conv tuning cache.

Each target below runs the project's real entry point on every mutant
(:mod:`tests.fuzzing` makes the mutants and runs them in a forked child)
and judges the result:

* checkpoints: :func:`slak_mm.checkpoint.load_checkpoint_safely` and
  mmengine's ``CheckpointLoader.load_checkpoint`` (as ``import slak_mm``
  sets it up). Passing: the unmutated checkpoint; a ``CheckpointError`` of
  one line naming the file; or, for a mutant whose last mutation rewrote
  the archive with correct CRCs (so it is a well-formed file that says
  something else), a checkpoint of the allowed types only whose tensors
  can all be read. A damaged file (CRCs not made right) loading as a
  different checkpoint is a silent change.
* COCO / VOC: :func:`slak_mm.datasets.check_dataset_files` on the demo
  configs (with :func:`~slak_mm.datasets.install_data_checks`, as the tools
  run them), then mmdet's real dataset and train pipeline. Passing: a
  one-line ``DatasetError`` naming the file, or a start summary whose
  images, kept and ignored instances equal what the dataset yields (a
  changed count the summary states is a result, a count it does not state
  is a silent change; an exception from mmdet after the check passed is a
  traceback).
* PNG label maps: ``check_dataset_files`` on the demo segmentation config
  and the decode-time check (the pipeline's ``CheckedLoadAnnotations``).
  Passing: a one-line ``DatasetError`` naming the file; the unmutated
  labels; or the labels of a valid PNG (libpng, which checks every CRC and
  the zlib checksum, decodes it to the same array).
* the tuning cache: ``slak_mm.ops.tuning_cache.read_file``. Passing: the
  records (each with the record fields' types), or nothing with exactly one
  warning, or nothing without one for a file of other versions (stale).

Bounds, for every mutant: :data:`tests.fuzzing.TIME_LIMIT_S` (10 s) of run
time and :data:`tests.fuzzing.RSS_LIMIT_MIB` (100 MiB) of peak RSS growth.

The suite runs a few mutants per target (about 20 s in all); ``make fuzz``
runs ``SLAK_MM_FUZZ_MUTANTS`` (2000) of each with ``SLAK_MM_FUZZ_SEED``.
"""
import argparse
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

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub, MMLogger

from slak_mm.checkpoint import CheckpointError, load_checkpoint_safely
from slak_mm.config import load_config
from slak_mm.datasets import (DatasetError, check_dataset_files, generate_all,
                              install_data_checks)
from slak_mm.ops import tuning_cache
from tests import fuzzing
from tests.common import DEMO_COCO_CONFIG, DEMO_CONFIG, DEMO_VOC_CONFIG
from tests.common import tiny_slak
from tests.fuzzing import Outcome, refused, weighted
from tests.test_dataset_checks import yielded

#: Mutants per target in the suite (about 20 s in all on 2 cores).
SUITE_MUTANTS = dict(
    checkpoint=120, coco=25, voc=25, png=120, tuning_cache=120)


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
    hub = MessageHub.get_instance('fuzz_checkpoint')
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
    elif getattr(obj, '__qualname__', '').startswith('HistoryBuffer.'):
        return None  # getattr(HistoryBuffer, 'min'): allowed
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
        return (a.dtype, a.shape, a.stride()) == (
            b.dtype, b.shape, b.stride()) and bool(
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
        weighted(3, fuzzing.BYTE_MUTATORS) +
        weighted(2, [fuzzing.zip_field]) +
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
                     functools.partial(CheckpointLoader.load_checkpoint,
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
            return Outcome('silent change', f'the summary says (images, '
                           f'kept, ignored) = {said}; mmdet yields {got}')
        return Outcome('same' if got == self.reference[1] else 'other')


# ----------------------------------------------------------------------------
# label maps
# ----------------------------------------------------------------------------
@functools.lru_cache()
def _bombs():
    return (fuzzing.png_bomb(100000, 'short'), fuzzing.png_bomb(6000))


def png_bomb(rng, data):
    """A PNG declaring 100000 x 100000 pixels, or 6000 x 6000 zero pixels
    in 36 KB (a decompression bomb)."""
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
        loader = next(t for t in dataset.pipeline
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
        try:
            check_dataset_files(self.cfg, ('train', ))
        except DatasetError as err:
            verdicts.append(refused(err, self.path))
        try:
            labels = self.decode()
        except DatasetError as err:
            verdicts.append(refused(err, self.path))
        else:
            verdicts.append(self._judge(labels, mutant.data))
        return _worst(verdicts)

    def _judge(self, labels, data) -> Outcome:
        if np.array_equal(labels, self.reference):
            return Outcome('same')
        if cv2.imdecode(np.frombuffer(data, np.uint8),
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
        if key in record and not isinstance(record[key], kind) or isinstance(
                record.get(key), bool):
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
            'cpu|float32|1x8x16x16|k7': dict(
                choice='torch', how='measured',
                times=dict(torch=1e-4, fft=3e-4), failures=dict(
                    triton='no GPU'), seconds=0.01),
            'cpu|float32|1x8x16x16|k13': 'fft',  # format 1: a name
        }
        self.base = fuzzing.dump_json(
            dict(fingerprint=tuning_cache.fingerprint(),
                 entries=self.records))
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
            return Outcome('warnings', f'{len(said)} warnings: '
                           f'{[str(w.message) for w in said]}')
        if not isinstance(records, dict):
            return Outcome('not records', f'{type(records).__name__}')
        if said:
            message = str(said[0].message)
            if records or '\n' in message or self.path not in message:
                return Outcome('not one line', message)
            return Outcome('refused', message[:160])
        if len(mutant.data) > self.max_bytes:
            return Outcome('silent change', f'a {len(mutant.data)}-byte '
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
        if isinstance(stored, dict) and (
                stored.get('fingerprint') != tuning_cache.fingerprint()
                or stored.get('entries') == {}):
            return Outcome('same', 'stale')
        return Outcome('silent change', 'records ignored without a word')


# ----------------------------------------------------------------------------
# the runs
# ----------------------------------------------------------------------------
@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    """The three layouts, 64 x 64, 2 training images each."""
    return generate_all(
        str(tmp_path_factory.mktemp('fuzz_data')),
        num_train=2,
        num_val=1,
        img_size=64)


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
        'voc', DEMO_VOC_CONFIG, root,
        sorted(glob.glob(osp.join(root, 'VOC2007', 'Annotations',
                                  '*.xml')))[0],
        weighted(6, fuzzing.XML_MUTATORS) +
        weighted(2, fuzzing.BYTE_MUTATORS),
        summary=osp.join(root, 'VOC2007', 'ImageSets', 'Main', 'trainval.txt'))


@pytest.mark.parametrize('name', sorted(SUITE_MUTANTS))
def test_fuzz(name, data_root, tmp_path):
    """Every mutant ends in a passing verdict within the bounds (see the
    module doc); ``make fuzz`` prints each target's summary."""
    target = make_target(name, data_root, str(tmp_path))
    report = fuzzing.run(
        target,
        fuzzing.mutant_count(SUITE_MUTANTS[name]),
        fuzzing.run_seed(),
        out_dir=os.environ.get(fuzzing.OUT_ENV))
    print(report.summary())
    assert not report.failures, report.describe_failures()
