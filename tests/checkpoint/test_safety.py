"""Crash-safety building blocks, in process: atomic files get plain-open
modes, stale temp files of killed writes are cleared, ``--resume`` (auto)
picks a complete checkpoint when ``last_checkpoint`` is missing, empty or
names a missing or damaged file, and SafeCheckpointHook writes new
checkpoints and the pointer before removing old and previous-best ones;
within ``atomic_local_writes`` mmengine's and mmcv's writers are atomic.
(The kills in real training runs: checkpoint/test_crash_resume.py.)"""
import io
import os
import os.path as osp
import stat
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.evaluator import BaseMetric, DumpResults, Evaluator
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.model import BaseModel
from mmengine.runner import Runner

import slak_mm  # noqa: F401
from slak_mm import fileio
from slak_mm.checkpoint import (DamagedCheckpointError, atomic,
                                checkpoint_problem, find_resume_checkpoint,
                                load_checkpoint_safely, resolve_auto_resume)
from slak_mm.engine.hooks import SafeCheckpointHook
from slak_mm.fileio import atomic_write_bytes, remove_stale_temp_files
from tests.common import disk_full_for


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_atomic_file_gets_plain_open_mode(tmp_path, umask_027):
    atomic_write_bytes(b'x', tmp_path / 'new.bin')
    with open(tmp_path / 'plain.bin', 'w'):
        pass
    assert mode_of(tmp_path / 'new.bin') == 0o640
    assert mode_of(tmp_path / 'new.bin') == mode_of(tmp_path / 'plain.bin')
    # an existing file keeps its mode, as open(path, 'w') would leave it
    os.chmod(tmp_path / 'new.bin', 0o600)
    atomic_write_bytes(b'yy', tmp_path / 'new.bin')
    assert mode_of(tmp_path / 'new.bin') == 0o600
    assert (tmp_path / 'new.bin').read_bytes() == b'yy'


def test_umask_fallback_without_proc(tmp_path, umask_027, monkeypatch):
    real_open = open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith('/proc/'):
            raise OSError('no /proc')
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr('builtins.open', no_proc)
    assert fileio.current_umask() == 0o027
    assert os.umask(0o027) == 0o027  # and it was restored


def test_remove_stale_temp_files_only_ours(tmp_path):
    ours = ['.iter_3.pth.k2j_x9a0.tmp', '.last_checkpoint.abcdefgh.tmp']
    others = ['notes.tmp', '.hidden.tmp', 'iter_3.pth', '.x.abc.tmp']
    for name in ours + others:
        (tmp_path / name).write_bytes(b'1')
    (tmp_path / '.dir.abcdefgh.tmp').mkdir()
    removed = remove_stale_temp_files(tmp_path)
    assert sorted(removed) == sorted(str(tmp_path / n) for n in ours)
    assert sorted(os.listdir(tmp_path)) == sorted(others +
                                                  ['.dir.abcdefgh.tmp'])
    assert remove_stale_temp_files(tmp_path / 'missing') == []


def save(path, step):
    torch.save(
        dict(meta=dict(iter=step), state_dict={'w': torch.ones(3)}), path)
    return str(path)


@pytest.fixture
def work_dir(tmp_path):
    for step in (1, 2, 3):
        save(tmp_path / f'iter_{step}.pth', step)
    (tmp_path / 'iter_x.pth').write_bytes(b'not numbered')
    return tmp_path


def point(work_dir, text):
    (work_dir / 'last_checkpoint').write_text(text)


def test_checkpoint_problem(tmp_path):
    good = save(tmp_path / 'good.pth', 1)
    assert checkpoint_problem(good) is None
    assert 'does not exist' in checkpoint_problem(str(tmp_path / 'no.pth'))
    assert 'a folder' in checkpoint_problem(str(tmp_path))
    (tmp_path / 'empty.pth').write_bytes(b'')
    assert 'empty' in checkpoint_problem(str(tmp_path / 'empty.pth'))
    data = open(good, 'rb').read()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])
    assert 'not a complete' in checkpoint_problem(str(tmp_path / 'cut.pth'))
    flipped = bytearray(data)
    at = data.index(b'\x00\x00\x80\x3f')  # the first 1.0f of the tensor
    flipped[at + 3] ^= 0x01
    (tmp_path / 'flip.pth').write_bytes(bytes(flipped))
    assert 'CRC' in checkpoint_problem(str(tmp_path / 'flip.pth'))
    torch.save({'w': 1},
               tmp_path / 'legacy.pth',
               _use_new_zipfile_serialization=False)
    assert '--resume PATH' in checkpoint_problem(str(tmp_path / 'legacy.pth'))
    with zipfile.ZipFile(tmp_path / 'other.zip', 'w') as z:
        z.writestr('a.txt', 'x')
        z.writestr('b.txt', 'y')
    assert 'no data.pkl' in checkpoint_problem(str(tmp_path / 'other.zip'))
    with zipfile.ZipFile(tmp_path / 'hub_legacy.zip', 'w') as z:
        z.writestr('resnet.pth', 'x')  # torch.hub's pre-1.6 zip of a file
    assert 'unzip it' in checkpoint_problem(str(tmp_path / 'hub_legacy.zip'))
    with open(good, 'rb') as f:  # a stream is checked where it stands
        stream = io.BytesIO(b'junk' + f.read())
    stream.seek(4)
    assert checkpoint_problem(stream) is None and stream.tell() == 4


def _rezip(good, path, compress_type=zipfile.ZIP_STORED, grow=None):
    """A copy of the checkpoint ``good`` whose members are written with
    ``compress_type``; ``grow`` (name -> bytes) appends zeros to members
    (their CRC stays right: only the size check can refuse them)."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, 'w',
                                                       compress_type) as dst:
        for info in src.infolist():
            data = src.read(info) + bytes((grow or {}).get(info.filename, 0))
            dst.writestr(info.filename, data)
    return str(path)


def test_compressed_or_oversized_members_are_refused_uninflated(tmp_path):
    good = save(tmp_path / 'good.pth', 1)
    storage = next(
        n for n in zipfile.ZipFile(good).namelist() if '/data/' in n)
    # 64 MiB of zeros deflate to ~64 KiB: torch would inflate every byte
    bomb = _rezip(good, tmp_path / 'bomb.pth', zipfile.ZIP_DEFLATED,
                  {storage: 64 << 20})
    assert os.path.getsize(bomb) < 1 << 20
    problem = checkpoint_problem(bomb)
    assert 'is compressed' in problem and 'before inflating' in problem
    with pytest.raises(DamagedCheckpointError, match='is compressed'):
        load_checkpoint_safely(bomb)
    # stored members declaring more bytes than the file has (a forged
    # central directory): refused from the directory alone
    forged = bytearray(open(good, 'rb').read())
    entry = forged.rindex(b'PK\x01\x02')  # the last central-directory entry
    forged[entry + 24:entry + 28] = (1 << 31).to_bytes(4, 'little')
    (tmp_path / 'forged.pth').write_bytes(bytes(forged))
    assert 'declare' in checkpoint_problem(str(tmp_path / 'forged.pth'))


def test_resume_follows_a_good_pointer(work_dir):
    point(work_dir, str(work_dir / 'iter_3.pth'))
    assert find_resume_checkpoint(str(work_dir)) == (str(work_dir /
                                                         'iter_3.pth'), [])


def test_resume_takes_a_newer_complete_checkpoint_than_the_pointer(work_dir):
    # iter_3.pth saved, then last_checkpoint could not be updated (disk full)
    point(work_dir, str(work_dir / 'iter_2.pth'))
    path, notes = find_resume_checkpoint(str(work_dir))
    assert path == str(work_dir / 'iter_3.pth')
    assert notes == [
        f'{work_dir / "last_checkpoint"} names {work_dir / "iter_2.pth"}, but '
        f'{path} is newer and complete (the pointer was not updated after '
        f'it was saved): resuming from {path}'
    ]


@pytest.mark.parametrize('damage, why', [
    ('no_pointer', 'does not exist'),
    ('empty_pointer', 'is empty'),
    ('deleted_target', 'does not exist'),
    ('truncated_target', 'not a complete torch checkpoint'),
])
def test_resume_falls_back_to_newest_complete(work_dir, damage, why):
    newest = work_dir / 'iter_3.pth'
    if damage == 'empty_pointer':
        point(work_dir, '')
    elif damage != 'no_pointer':
        point(work_dir, str(newest) + '\n')
    if damage == 'deleted_target':
        newest.unlink()
    elif damage == 'truncated_target':
        newest.write_bytes(newest.read_bytes()[:1000])
    expected = work_dir / ('iter_3.pth' if damage in
                           ('no_pointer', 'empty_pointer') else 'iter_2.pth')
    path, notes = find_resume_checkpoint(str(work_dir))
    assert path == str(expected)
    assert why in notes[0]
    assert notes[-1].endswith(f'instead: {expected}')
    if damage == 'truncated_target':
        assert f'skipped {newest}' in notes[1]


def test_resume_with_nothing_complete_starts_from_scratch(tmp_path):
    (tmp_path / 'iter_5.pth').write_bytes(b'garbage')
    point(tmp_path, str(tmp_path / 'iter_5.pth'))
    cfg = Config(
        dict(
            resume=True,
            load_from=None,
            work_dir=str(tmp_path),
            default_hooks=dict(checkpoint=dict(by_epoch=False))))
    notes = resolve_auto_resume(cfg)
    assert cfg.resume is False and cfg.load_from is None
    assert 'skipped' in notes[1]
    assert notes[-1].endswith('training starts from scratch')
    assert all(n.startswith('Auto resume: ') for n in notes)


def test_resolve_auto_resume_uses_the_hook_settings(tmp_path):
    out = tmp_path / 'out' / 'run'
    out.mkdir(parents=True)
    save(out / 'ckpt-7.pth', 7)
    save(tmp_path / 'epoch_9.pth', 9)  # another template: not considered
    cfg = Config(
        dict(
            resume=True,
            load_from=None,
            work_dir=str(tmp_path / 'run'),
            default_hooks=dict(
                checkpoint=dict(
                    filename_tmpl='ckpt-{}.pth', out_dir=str(tmp_path /
                                                             'out')))))
    resolve_auto_resume(cfg)
    assert (cfg.resume, cfg.load_from) == (True, str(out / 'ckpt-7.pth'))
    explicit = Config(dict(resume=True, load_from='x.pth', work_dir='w'))
    assert resolve_auto_resume(explicit) == []
    assert explicit.load_from == 'x.pth'


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)  # default_collate: a (batch, 2) tensor
        return dict(loss=out.abs().mean()) if mode == 'loss' else [out]


class IterMetric(BaseMetric):
    """Score = number of evaluations so far: every validation is a new
    best."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        self.calls += 1
        return dict(score=self.calls)


def test_hook_writes_before_it_removes(tmp_path, monkeypatch):
    """Every removal (max_keep_ckpts and the previous best) comes after the
    new checkpoint and the pointer are on disk."""
    events = []
    real_put, real_remove = fileio.atomic_write_bytes, LocalBackend.remove

    def put(data, path):
        real_put(data, path)
        events.append(('write', osp.basename(path)))

    def remove(self, path):
        real_remove(self, path)
        events.append(('remove', osp.basename(path)))

    monkeypatch.setattr(atomic, 'atomic_write_bytes', put)
    monkeypatch.setattr(
        'slak_mm.engine.hooks.checkpoint_hook.atomic_write_bytes', put)
    monkeypatch.setattr(LocalBackend, 'remove', remove)
    data = [dict(inputs=torch.ones(2))] * 2
    runner = Runner(
        model=ToyModel(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=1,
            collate_fn=dict(type='default_collate')),
        val_dataloader=dict(
            dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=1,
            collate_fn=dict(type='default_collate')),
        val_evaluator=Evaluator(IterMetric()),
        train_cfg=dict(by_epoch=False, max_iters=3, val_interval=1),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            checkpoint=SafeCheckpointHook(
                interval=1,
                by_epoch=False,
                max_keep_ckpts=1,
                save_best='score',
                rule='greater',
                backend_args=dict(backend='atomic_local'))),
        default_scope='mmseg')
    runner.train()
    for step in (2, 3):
        prev = events.index(('remove', f'iter_{step - 1}.pth'))
        best = events.index(('remove', f'best_score_iter_{step - 1}.pth'))
        assert events.index(('write', f'iter_{step}.pth')) < prev
        assert events.index(('write', f'best_score_iter_{step}.pth')) < best
        # the pointer to iter_step, written before iter_{step-1} goes
        pointer = [
            i for i, e in enumerate(events)
            if e == ('write', 'last_checkpoint')
        ]
        assert any(
            events.index(('write', f'iter_{step}.pth')) < i < prev
            for i in pointer)
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.pth')) == [
        'best_score_iter_3.pth', 'iter_3.pth'
    ]
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path /
                                                             'iter_3.pth')
    # iter_3.pth lists the pruned steps it still owed: none after the run
    assert runner.message_hub.get_info('keep_ckpt_ids') == [3]


def test_hook_writes_atomically_by_default():
    assert SafeCheckpointHook(interval=1).backend_args == dict(
        backend='atomic_local')
    assert SafeCheckpointHook(
        interval=1, out_dir='s3://bucket/ckpt').backend_args is None
    assert SafeCheckpointHook(
        interval=1, backend_args=dict(backend='local')).backend_args == dict(
            backend='local')


@pytest.mark.parametrize('text', ['\x00iter_3.pth', 'a\nb', 'x' * 10000])
def test_resume_survives_a_garbage_pointer(work_dir, text):
    point(work_dir, text)
    path, notes = find_resume_checkpoint(str(work_dir))
    assert path == str(work_dir / 'iter_3.pth')
    assert 'is unusable' in notes[0]


def test_atomic_local_writes_cover_mmengine_dump_and_mmcv_imwrite(
        tmp_path, monkeypatch):
    """mmengine's DumpResults (the --out pickle; mmdet's DumpDetResults is
    one) and mmcv.imwrite (mmdet's --show-dir) choose their backend by the
    path: within the block it is the atomic one, and only there."""
    import mmcv
    out = tmp_path / 'results.pkl'
    out.write_bytes(b'old')
    fifo = tmp_path / 'painted.png'
    os.mkfifo(fifo)
    disk_full_for(monkeypatch, 'results.pkl')
    get_file_backend(str(out), enable_singleton=True)  # cached before
    with atomic.atomic_local_writes():
        with pytest.raises(fileio.DiskFullError) as err:
            DumpResults(out_file_path=str(out)).compute_metrics([{'a': 1}])
        with pytest.raises(fileio.UnsafeOutputError, match='a FIFO'):
            mmcv.imwrite(np.zeros((4, 4, 3), np.uint8), str(fifo))
    assert str(err.value).startswith(
        f'no space left on device writing {out}: it needs ')
    assert out.read_bytes() == b'old'
    assert sorted(os.listdir(tmp_path)) == ['painted.png', 'results.pkl']
    for singleton in (False, True):  # mmengine's own backend again
        backend = get_file_backend(str(out), enable_singleton=singleton)
        assert type(backend) is LocalBackend
