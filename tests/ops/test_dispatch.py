"""The measuring dispatcher of the depthwise convs (``impl='auto'``):
choices, the injected failing, wrong, out-of-memory and slow candidates,
the on-disk cache and its records (corrupt, stale, old format, reused,
re-measured, deeply nested, huge, a FIFO / device / link / folder at its
path, a full disk), bucketing, the switches, the stall report, two DDP
ranks."""
import json
import sys
import time
import warnings

import pytest
import torch

from slak_mm.fileio import file_kind
from slak_mm.ops import (auto_candidates, clear_memory, configure,
                         multi_depthwise_conv2d, resolve_impl, retune,
                         settings, tuning, tuning_cache, tuning_record,
                         tuning_stall, tuning_state, use)
from slak_mm.ops.heuristic import heuristic
from slak_mm.ops.keys import TuningKey, bucket, tuning_key
from slak_mm.ops.registry import CANDIDATES, Candidate
from slak_mm.ops.settings import CACHE_ENV, IMPL_ENV, RETUNE_ENV, TUNE_ENV
from tests.common import (DEMO_CONFIG, SPECIAL_FILES, deadline, disk_full_for,
                          free_port, hide_modules, special_file)
from tests.tool_runner import refusal, run_process


@pytest.fixture(autouse=True)
def fresh(monkeypatch, tmp_path):
    """Own cache file (from the environment, read anew), empty memory,
    tuning of tiny shapes, one round; the ops' settings as they were
    afterwards."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / 'tune.json'))
    monkeypatch.delenv(IMPL_ENV, raising=False)
    monkeypatch.delenv(TUNE_ENV, raising=False)
    monkeypatch.delenv(RETUNE_ENV, raising=False)
    monkeypatch.setattr(tuning_state, 'MIN_TUNE_WORK', 0)
    monkeypatch.setattr(tuning, 'REPEATS', 1)
    monkeypatch.setattr(tuning, 'MAX_REPEATS', 1)
    clear_memory()
    with use():
        settings.reload()
        yield tmp_path / 'tune.json'
    clear_memory()


def _setenv(monkeypatch, name, value):
    """A variable as the user sets it: read at the next use (a new
    process would read it at its first)."""
    monkeypatch.setenv(name, value)
    settings.reload()


def _inputs(h=12, w=10, grad=True):
    x = torch.randn(1, 2, h, w, requires_grad=grad)
    weights = [torch.randn(2, 1, 13, 3, requires_grad=grad)]
    return x, weights


def _inject(monkeypatch, name, multi):
    base = CANDIDATES['torch']
    monkeypatch.setitem(CANDIDATES, name,
                        Candidate(lambda x, w: True, multi, base.cross, ''))


def _torch_multi(x, weights):
    return CANDIDATES['torch'].multi(x, weights)


def test_bucket():
    assert [bucket(n) for n in (1, 8, 9, 16, 17, 200, 210, 224, 225, 336)
            ] == [1, 8, 10, 16, 20, 224, 224, 224, 256, 384]
    for n in range(9, 3000):  # steps of at most 25%
        assert n <= bucket(n) <= 1.25 * n + 1


def test_keys_bucket_sizes_and_split_training_from_inference():
    x, weights = _inputs(200, 210)
    key = tuning_key('multi', x, weights)
    assert key == tuning_key('multi', torch.randn(1, 2, 215, 224), weights)
    with torch.no_grad():
        assert tuning_key('multi', x, weights) != key
    assert tuning_key('multi', x.detach(),
                      [w.detach() for w in weights]) != key


def test_tunes_once_and_stores(fresh, monkeypatch):
    calls = []
    measured = {}

    def counting(x, weights):
        calls.append(1)
        return _torch_multi(x, weights)

    def recording(fns, **kwargs):  # the dispatcher's timing, kept
        measured.update(time_interleaved(fns, **kwargs))
        return measured

    time_interleaved = tuning.time_interleaved
    monkeypatch.setattr(tuning, 'time_interleaved', recording)
    _inject(monkeypatch, 'counting', counting)
    x, weights = _inputs()
    choice = resolve_impl(x, None, weights)
    # every candidate was timed and the fastest (best round) was chosen
    assert set(measured) == {'torch', 'fft', 'counting'}
    assert choice == min(measured, key=lambda name: min(measured[name]))
    tuned_calls = len(calls)
    assert tuned_calls == 2  # the check, then one timed repeat
    assert resolve_impl(x, None, weights) == choice  # from memory
    x2, _ = _inputs(11, 9)  # same buckets: same key
    assert resolve_impl(x2, None, weights) == choice
    assert len(calls) == tuned_calls
    data = json.loads(fresh.read_text())
    assert data['fingerprint'] == tuning_cache.fingerprint()
    (record, ) = data['entries'].values()  # with every candidate's time
    assert record['choice'] == choice and record['how'] == 'measured'
    assert record['times'] == {n: min(t) for n, t in measured.items()}
    # A new process (memory cleared) reads the file instead of tuning.
    clear_memory()
    assert resolve_impl(x, None, weights) == choice
    assert len(calls) == tuned_calls


def test_failing_and_wrong_candidates_are_dropped_with_one_warning_each(
        monkeypatch):

    def broken(x, weights):
        raise RuntimeError('launch failed')

    def wrong(x, weights):
        return tuple(1.5 * o for o in _torch_multi(x, weights))

    _inject(monkeypatch, 'broken', broken)
    _inject(monkeypatch, 'wrong', wrong)
    x, weights = _inputs()
    with pytest.warns(UserWarning) as record:
        choice = resolve_impl(x, None, weights)
    assert choice in ('torch', 'fft')
    messages = [str(r.message) for r in record if 'slak_mm' in str(r.message)]
    assert len(messages) == 2
    assert any(
        "'broken'" in m and 'launch failed' in m and f'using {choice!r}' in m
        for m in messages)
    assert any("'wrong'" in m and 'wrong result' in m for m in messages)
    # The result is the real conv's, and nothing warns again.
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        (out, ) = multi_depthwise_conv2d(x, weights)
    (ref, ) = multi_depthwise_conv2d(x, weights, impl='torch')
    assert torch.allclose(out, ref, atol=1e-5)


def test_corrupt_cache_warns_and_is_replaced(fresh):
    fresh.write_text('{"entries": {"a": ')
    x, weights = _inputs()
    with pytest.warns(UserWarning, match='ignoring the depthwise conv'):
        choice = resolve_impl(x, None, weights)
    (record, ) = json.loads(fresh.read_text())['entries'].values()
    assert record['choice'] == choice


def test_stale_cache_is_ignored_quietly(fresh, monkeypatch):
    x, weights = _inputs()
    key = tuning_key('multi', x, weights).cache_name()
    _inject(monkeypatch, 'never', lambda x, w: 1 / 0)
    stale = dict(tuning_cache.fingerprint(), torch='0.0')
    fresh.write_text(
        json.dumps(dict(fingerprint=stale, entries={key: 'never'})))
    with pytest.warns(UserWarning, match="'never'"):  # tuned: never fails
        assert resolve_impl(x, None, weights) != 'never'


def test_stored_choice_is_used_without_tuning(fresh, monkeypatch):
    x, weights = _inputs()
    key = tuning_key('multi', x, weights).cache_name()
    fresh.write_text(
        json.dumps(
            dict(fingerprint=tuning_cache.fingerprint(), entries={key:
                                                                  'fft'})))
    monkeypatch.setattr(tuning, 'tune', None)  # would raise if called
    assert resolve_impl(x, None, weights) == 'fft'


def _slak_warnings_of(*calls):
    """Run ``calls`` (forwards that tune; a hang fails), return the slak_mm
    warnings they gave."""
    with deadline(60), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        for call in calls:
            call()
    return _slak_warnings(record)


def _forward_and_backward(h=12, w=10):
    x, weights = _inputs(h, w)
    (out, ) = multi_depthwise_conv2d(x, weights)
    out.sum().backward()
    return tuning_key('multi', x, weights)


@pytest.mark.parametrize('kind', sorted(SPECIAL_FILES))
def test_cache_path_of_no_regular_file_is_never_read_nor_replaced(
        tmp_path, monkeypatch, kind):
    """A FIFO is never opened for a blocking read (it hung the first
    forward), a device or link never replaced: one warning, training goes
    on with the choices in memory."""
    path = special_file(tmp_path, kind)
    configure(cache=path)
    keys = []
    (message, ) = _slak_warnings_of(
        lambda: keys.append(_forward_and_backward()),
        lambda: keys.append(_forward_and_backward(20, 16)))  # 2 writes
    assert message == (f'slak_mm: ignoring the depthwise conv tuning cache '
                       f'{path} (it is {file_kind(path)}, not a regular '
                       f'file; choices are kept in memory only)')
    assert file_kind(path).startswith(SPECIAL_FILES[kind])  # left as it was
    if kind == 'symlink':
        assert (tmp_path / 'target').read_bytes() == b'target'
    assert [tuning_record(k)['how'] for k in keys] == ['measured'] * 2


@pytest.mark.parametrize('content, why', [
    ('deep', 'nested too deeply: not a tuning cache'),
    ('deep_record', 'not a tuning cache'),
    ('huge', 'holds 17.0 MiB, more than the 16 MiB accepted'),
])
def test_deep_or_huge_cache_is_ignored_with_one_warning(fresh, content, why):
    assert tuning_cache.MAX_CACHE_BYTES == 16 * 2**20  # the stated bound
    if content == 'deep':  # json's parser recursed into a RecursionError
        fresh.write_text('[' * 100000)
    elif content == 'deep_record':  # parses; deepcopy of it would recurse
        record = dict(choice='torch', times={'torch': 1.0})
        record['how'] = json.loads('[' * 600 + ']' * 600)
        fresh.write_text(
            json.dumps(
                dict(
                    fingerprint=tuning_cache.fingerprint(),
                    entries={'a key': record})))
    else:
        with open(fresh, 'wb') as f:
            f.truncate(17 * 2**20)  # sparse: costs no disk
    keys = []
    (message,
     ) = _slak_warnings_of(lambda: keys.append(_forward_and_backward()))
    assert message.startswith(
        f'slak_mm: ignoring the depthwise conv tuning cache {fresh} (')
    assert message.endswith(f'{why})')
    # replaced by this run's measurement, as a corrupt file is
    entries = json.loads(fresh.read_text())['entries']
    assert list(entries) == [keys[0].cache_name()]


def test_cache_write_on_a_full_disk_warns_and_keeps_the_file(
        fresh, monkeypatch):
    old = json.dumps(
        dict(fingerprint=tuning_cache.fingerprint(), entries={'other': 'fft'}))
    fresh.write_text(old)
    disk_full_for(monkeypatch, fresh.name)
    (message, ) = _slak_warnings_of(_forward_and_backward)
    assert message.startswith(
        f'slak_mm: could not write the depthwise conv tuning cache {fresh} '
        f'(no space left on device writing {fresh}: it needs ')
    assert fresh.read_text() == old


def test_switch_cap_and_small_work_use_the_heuristic(monkeypatch):
    monkeypatch.setattr(tuning, 'tune', None)  # would raise if called
    big = torch.randn(1, 2, 64, 64, requires_grad=True)
    small = torch.randn(1, 2, 8, 8, requires_grad=True)
    weights = [torch.randn(2, 1, 51, 5, requires_grad=True)]
    configure(tune=False)
    assert resolve_impl(big, None, weights) == 'fft'
    assert resolve_impl(small, None, weights) == 'torch'
    with torch.no_grad():  # CPU inference: oneDNN
        assert resolve_impl(big, None, weights) == 'torch'
    configure(tune=True, max_tuned=0)
    clear_memory()
    assert resolve_impl(big, None, weights) == 'fft'
    assert tuning_record(tuning_key('multi', big, weights))['how'] == (
        'heuristic: 0 keys tuned already (slak_mm.ops setting max_tuned)')
    configure(max_tuned=10)
    monkeypatch.setattr(tuning_state, 'MIN_TUNE_WORK', 1 << 40)
    clear_memory()
    assert resolve_impl(big, None, weights) == 'fft'
    assert heuristic(
        TuningKey('multi', 'cuda', 0, 'torch.float32', 1, 2, 64, 64, 'nchw',
                  ((51, 5), ), 'train')) == 'torch'


def test_forced_impls_and_errors(monkeypatch):
    x, weights = _inputs()
    monkeypatch.setattr(tuning, 'tune', None)
    assert resolve_impl(x, 'fft', weights) == 'fft'
    configure(impl='fft')
    assert resolve_impl(x, None, weights) == 'fft'
    with pytest.raises(ValueError, match="'cudnn' .argument impl."):
        resolve_impl(x, 'cudnn', weights)
    _setenv(monkeypatch, IMPL_ENV, 'cudnn')
    for _ in range(2):  # at every call, until fixed
        with pytest.raises(ValueError) as err:
            resolve_impl(x, None, weights)
        assert str(err.value) == (
            f"Unknown depthwise conv implementation 'cudnn' (${IMPL_ENV}); "
            f'choose one of auto, torch, fft, triton')
    with pytest.raises(RuntimeError, match='FFT needs'):
        resolve_impl(x.long(), 'fft', weights)


def test_env_forced_impl_is_the_one_that_runs(monkeypatch):
    calls = []

    def counting_fft(x, weights):
        calls.append(1)
        return _torch_multi(x, weights)

    _inject(monkeypatch, 'fft', counting_fft)
    monkeypatch.setattr(tuning, 'tune', None)  # would raise if called
    _setenv(monkeypatch, IMPL_ENV, 'fft')
    x, weights = _inputs()
    multi_depthwise_conv2d(x, weights)
    assert calls == [1]
    _setenv(monkeypatch, IMPL_ENV, 'torch')
    multi_depthwise_conv2d(x, weights)
    assert calls == [1]


@pytest.mark.skipif(
    torch.cuda.is_available(), reason='Triton has its GPU path here')
def test_env_forced_triton_without_a_gpu_is_one_line(monkeypatch, tmp_path):
    """``SLAK_MM_DWCONV_IMPL=triton`` on a CPU machine: refused before the
    run, and at the first conv (was: a RuntimeError traceback there)."""
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    _setenv(monkeypatch, IMPL_ENV, 'triton')
    expected = (
        f'{IMPL_ENV}=triton cannot run here: ' +
        ('no CUDA GPU (torch.cuda.is_available() is False) for Triton, and '
         'TRITON_INTERPRET is not 1 (its CPU interpreter, a test mode)'
         if 'triton' in CANDIDATES else
         'triton is not installed or failed to import') +
        f'; set {IMPL_ENV} to one of auto, torch, fft (auto when unset)')
    with pytest.raises(ValueError) as err:
        multi_depthwise_conv2d(*_inputs())
    assert str(err.value) == expected
    line = refusal('tools/train.py', DEMO_CONFIG, '--work-dir', tmp_path / 'w')
    assert line == f'error: {expected}'
    assert not (tmp_path / 'w').exists()
    configure(triton_interpret=True)  # Triton's CPU test mode
    if 'triton' in CANDIDATES:
        x, weights = _inputs()
        assert resolve_impl(x, None, weights) == 'triton'


def test_jit_tracing_gets_torch(monkeypatch):
    monkeypatch.setattr(tuning, 'tune', None)
    x, weights = _inputs(64, 64, grad=False)
    weights = [torch.randn(2, 1, 51, 5)]
    traced = torch.jit.trace(
        lambda x: multi_depthwise_conv2d(x, weights)[0], x, check_trace=False)
    assert 'aten::_convolution' in str(traced.graph)


def test_auto_never_offers_triton_for_cpu_tensors(monkeypatch):
    configure(triton_interpret=True)  # Triton could run them
    x, weights = _inputs()
    assert 'triton' not in auto_candidates(x)
    assert resolve_impl(x, None, weights) in ('torch', 'fft')  # tuned


def _slak_warnings(record):
    return [str(r.message) for r in record if 'slak_mm' in str(r.message)]


def test_record_says_why_and_retune_measures_again(fresh, monkeypatch):
    calls = []

    def counting(x, weights):
        calls.append(1)
        return _torch_multi(x, weights)

    _inject(monkeypatch, 'counting', counting)
    x, weights = _inputs()
    key = tuning_key('multi', x, weights)
    choice = resolve_impl(x, None, weights)
    record = tuning_record(key)
    assert record['choice'] == choice and record['how'] == 'measured'
    assert set(record['times']) == {'torch', 'fft', 'counting'}
    assert record['failures'] == {} and record['seconds'] > 0
    assert tuning_record(key.cache_name()) == record
    assert len(calls) == 2
    # A new process uses the file; $SLAK_MM_DWCONV_RETUNE=1 measures again
    # (once) and replaces the file's record; so does retune().
    clear_memory()
    resolve_impl(x, None, weights)
    assert len(calls) == 2
    _setenv(monkeypatch, RETUNE_ENV, '1')
    clear_memory()
    resolve_impl(x, None, weights)
    resolve_impl(x, None, weights)
    assert len(calls) == 4
    (stored, ) = json.loads(fresh.read_text())['entries'].values()
    assert stored != record and stored == tuning_record(key)
    monkeypatch.delenv(RETUNE_ENV)
    settings.reload()
    clear_memory()
    resolve_impl(x, None, weights)
    assert len(calls) == 4
    retune()
    resolve_impl(x, None, weights)
    assert len(calls) == 6
    # A key that was not measured says why.
    _setenv(monkeypatch, TUNE_ENV, '0')
    x2, _ = _inputs(40, 40)
    resolve_impl(x2, None, weights)
    assert tuning_record(tuning_key('multi', x2, weights)) == dict(
        choice='torch', how=f'heuristic: ${TUNE_ENV}=0')


def test_first_format_file_is_read(fresh, monkeypatch):
    x, weights = _inputs()
    key = tuning_key('multi', x, weights).cache_name()
    fresh.write_text(
        json.dumps(
            dict(
                fingerprint=dict(tuning_cache.fingerprint(), format='1'),
                entries={key: 'fft'})))
    monkeypatch.setattr(tuning, 'tune', None)  # would raise if called
    assert resolve_impl(x, None, weights) == 'fft'
    assert tuning_record(key) == dict(choice='fft', how='measured')


def test_out_of_memory_while_timed_drops_the_candidate_once(
        fresh, monkeypatch):
    calls = []

    def greedy(x, weights):  # passes its check, then runs out of memory
        calls.append(1)
        if len(calls) > 1:
            raise torch.OutOfMemoryError('CUDA out of memory. Tried to '
                                         'allocate 2.00 GiB\nmore lines')
        return _torch_multi(x, weights)

    _inject(monkeypatch, 'greedy', greedy)
    x, weights = _inputs()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        choice = resolve_impl(x, None, weights)
    assert choice in ('torch', 'fft') and len(calls) == 2
    (message, ) = _slak_warnings(record)
    assert "'greedy'" in message and 'OutOfMemoryError: CUDA out of memory' \
        in message and 'more lines' not in message
    stored = tuning_record(tuning_key('multi', x, weights))
    assert 'greedy' in stored['failures'] and 'greedy' not in stored['times']
    # Training goes on, with no further warning.
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        (out, ) = multi_depthwise_conv2d(x, weights)
        out.sum().backward()
    assert x.grad is not None and len(calls) == 2


def test_failing_reference_gives_the_heuristic_not_an_error(
        fresh, monkeypatch):

    def no_memory(x, weights):
        raise torch.OutOfMemoryError('out of memory')

    _inject(monkeypatch, 'torch', no_memory)
    x, weights = _inputs()
    with pytest.warns(UserWarning, match="'torch' failed for"):
        assert resolve_impl(x, None, weights) == 'torch'  # the heuristic's
    record = tuning_record(tuning_key('multi', x, weights))
    assert record['how'] == "heuristic: the reference 'torch' failed"
    assert not fresh.exists()  # not stored: measured again next process


def test_slow_candidate_is_abandoned_after_one_timed_call(monkeypatch):
    calls = []

    def sleepy(x, weights):
        calls.append(1)
        time.sleep(0.05)  # hundreds of times the tiny torch conv
        return _torch_multi(x, weights)

    monkeypatch.setattr(tuning, 'REPEATS', 3)
    monkeypatch.setattr(tuning, 'MAX_REPEATS', 3)
    _inject(monkeypatch, 'sleepy', sleepy)
    x, weights = _inputs()
    assert resolve_impl(x, None, weights) != 'sleepy'
    assert len(calls) - 1 < tuning.REPEATS  # the check, one timed call
    times = tuning_record(tuning_key('multi', x, weights))['times']
    assert times['sleepy'] > tuning.SLOW * times['torch']


def test_stall_is_reported_once(monkeypatch):
    configure(max_tuned=2)
    weights = _inputs()[1]
    reported = []
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        for side in (12, 20, 40):  # three keys: the cap is reached at two
            resolve_impl(_inputs(side, side)[0], None, weights)
            reported.append(len(_slak_warnings(record)))
        tuning_state._report_stall()  # at exit: already reported
    assert reported == [0, 1, 1] and len(_slak_warnings(record)) == 1
    assert 'for 2 new shape(s)' in _slak_warnings(record)[0]
    assert tuning_stall()['keys'] == 2
    # Below the cap: reported once, at exit.
    clear_memory()
    resolve_impl(_inputs()[0], None, weights)
    with pytest.warns(UserWarning, match='for 1 new shape'):
        tuning_state._report_stall()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        tuning_state._report_stall()


_RANKS = hide_modules() + r'''
import json, sys
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from slak_mm.ops import (resolve_impl, tuning, tuning_cache, tuning_key,
                         tuning_record, tuning_state)

SIZES = [(12, 10), (40, 40), (64, 64)]


def inputs(h, w):
    torch.manual_seed(0)
    return (torch.randn(1, 2, h, w, requires_grad=True),
            [torch.randn(2, 1, 13, 3, requires_grad=True)])


def worker(rank, out):
    dist.init_process_group('gloo', rank=rank, world_size=2)
    tuning_state.MIN_TUNE_WORK = 0
    # Measuring alone, rank 0 would choose fft and rank 1 torch.
    tuning.time_interleaved = lambda fns, **kw: {
        n: [1.0 if n == ('fft', 'torch')[rank] else 2.0] for n in fns}
    choices = {}
    for h, w in SIZES[::1 - 2 * rank]:  # new keys at different calls
        x, weights = inputs(h, w)
        key = tuning_key('multi', x, weights)
        choices[key.cache_name()] = [resolve_impl(x, None, weights),
                                     tuning_record(key)['how']]
    for writer in (1, 0):  # in turn: one would not overwrite the other
        if rank == writer:
            tuning_cache.remember(f'rank {rank}', dict(choice='torch'),
                                  persist=True)
        dist.barrier()
    gathered = [None, None]
    dist.all_gather_object(gathered, choices)
    if rank == 0:
        with open(out, 'w') as f:
            json.dump(gathered, f)
    dist.destroy_process_group()


if __name__ == '__main__':
    stored = tuning_key('multi', *inputs(*SIZES[0])).cache_name()
    tuning_cache.remember(stored, dict(choice='fft', how='measured'),
                          persist=True)
    with open(sys.argv[1] + '.key', 'w') as f:
        f.write(stored)
    # fork: the ranks need not import torch again (nothing ran threads yet)
    mp.start_processes(worker, (sys.argv[1], ), nprocs=2, start_method='fork')
'''


def test_ddp_ranks_agree_and_only_rank_0_writes(fresh, tmp_path):
    script = tmp_path / 'ranks.py'
    script.write_text(_RANKS)
    out = tmp_path / 'choices.json'
    proc = run_process([sys.executable, script, out],
                       timeout=120,
                       MASTER_ADDR='127.0.0.1',
                       MASTER_PORT=free_port(),
                       **{CACHE_ENV: str(fresh)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    stored = (tmp_path / 'choices.json.key').read_text()
    rank0, rank1 = json.loads(out.read_text())
    assert rank0 == rank1 and len(rank0) == 3
    for key, (choice, how) in rank0.items():  # stored, else the heuristic
        assert (choice, how) == (('fft', 'measured') if key == stored else
                                 ('torch', 'heuristic: 2 processes train '
                                  'together; they measure nothing'))
    assert set(json.loads(fresh.read_text())['entries']) == {stored, 'rank 0'}
