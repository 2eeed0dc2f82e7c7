"""The measuring dispatcher of the depthwise convs (``impl='auto'``):
choices, the injected failing and wrong candidates, the on-disk cache
(corrupt, stale, reused), bucketing, the switches."""
import json
import warnings

import pytest
import torch

from slak_mm.ops import (dispatch, multi_depthwise_conv2d, resolve_impl,
                         tuning_cache)
from slak_mm.ops.dispatch import Candidate, TuningKey, bucket
from slak_mm.ops.settings import CACHE_ENV, IMPL_ENV, MAX_TUNED_ENV, TUNE_ENV


@pytest.fixture(autouse=True)
def fresh(monkeypatch, tmp_path):
    """Own cache file, empty memory, tuning of tiny shapes, one round."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / 'tune.json'))
    monkeypatch.delenv(IMPL_ENV, raising=False)
    monkeypatch.delenv(TUNE_ENV, raising=False)
    monkeypatch.setattr(dispatch, 'MIN_TUNE_WORK', 0)
    monkeypatch.setattr(dispatch, 'REPEATS', 1)
    monkeypatch.setattr(dispatch, 'MAX_REPEATS', 1)
    dispatch.clear_memory()
    yield tmp_path / 'tune.json'
    dispatch.clear_memory()


def _inputs(h=12, w=10, grad=True):
    x = torch.randn(1, 2, h, w, requires_grad=grad)
    weights = [torch.randn(2, 1, 13, 3, requires_grad=grad)]
    return x, weights


def _inject(monkeypatch, name, multi):
    base = dispatch.CANDIDATES['torch']
    monkeypatch.setitem(dispatch.CANDIDATES, name,
                        Candidate(lambda x, w: True, multi, base.cross, ''))


def _torch_multi(x, weights):
    return dispatch.CANDIDATES['torch'].multi(x, weights)


def test_bucket():
    assert [bucket(n) for n in (1, 8, 9, 16, 17, 200, 210, 224, 225, 336)
            ] == [1, 8, 10, 16, 20, 224, 224, 224, 256, 384]
    for n in range(9, 3000):  # steps of at most 25%
        assert n <= bucket(n) <= 1.25 * n + 1


def test_keys_bucket_sizes_and_split_training_from_inference():
    x, weights = _inputs(200, 210)
    key = dispatch.tuning_key('multi', x, weights)
    assert key == dispatch.tuning_key('multi', torch.randn(1, 2, 215, 224),
                                      weights)
    with torch.no_grad():
        assert dispatch.tuning_key('multi', x, weights) != key
    assert dispatch.tuning_key('multi', x.detach(),
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

    time_interleaved = dispatch.time_interleaved
    monkeypatch.setattr(dispatch, 'time_interleaved', recording)
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
    assert list(data['entries'].values()) == [choice]
    # A new process (memory cleared) reads the file instead of tuning.
    dispatch.clear_memory()
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
    assert list(json.loads(fresh.read_text())['entries'].values()) == [choice]


def test_stale_cache_is_ignored_quietly(fresh, monkeypatch):
    x, weights = _inputs()
    key = dispatch.tuning_key('multi', x, weights).cache_name()
    _inject(monkeypatch, 'never', lambda x, w: 1 / 0)
    stale = dict(tuning_cache.fingerprint(), torch='0.0')
    fresh.write_text(
        json.dumps(dict(fingerprint=stale, entries={key: 'never'})))
    with pytest.warns(UserWarning, match="'never'"):  # tuned: never fails
        assert resolve_impl(x, None, weights) != 'never'


def test_stored_choice_is_used_without_tuning(fresh, monkeypatch):
    x, weights = _inputs()
    key = dispatch.tuning_key('multi', x, weights).cache_name()
    fresh.write_text(
        json.dumps(
            dict(fingerprint=tuning_cache.fingerprint(), entries={key:
                                                                  'fft'})))
    monkeypatch.setattr(dispatch, 'tune', None)  # would raise if called
    assert resolve_impl(x, None, weights) == 'fft'


def test_switch_cap_and_small_work_use_the_heuristic(monkeypatch):
    monkeypatch.setattr(dispatch, 'tune', None)  # would raise if called
    big = torch.randn(1, 2, 64, 64, requires_grad=True)
    small = torch.randn(1, 2, 8, 8, requires_grad=True)
    weights = [torch.randn(2, 1, 51, 5, requires_grad=True)]
    monkeypatch.setenv(TUNE_ENV, '0')
    assert resolve_impl(big, None, weights) == 'fft'
    assert resolve_impl(small, None, weights) == 'torch'
    with torch.no_grad():  # CPU inference: oneDNN
        assert resolve_impl(big, None, weights) == 'torch'
    monkeypatch.delenv(TUNE_ENV)
    monkeypatch.setenv(MAX_TUNED_ENV, '0')
    dispatch.clear_memory()
    assert resolve_impl(big, None, weights) == 'fft'
    monkeypatch.setenv(MAX_TUNED_ENV, '10')
    monkeypatch.setattr(dispatch, 'MIN_TUNE_WORK', 1 << 40)
    dispatch.clear_memory()
    assert resolve_impl(big, None, weights) == 'fft'
    assert dispatch.heuristic(
        TuningKey('multi', 'cuda', 0, 'torch.float32', 1, 2, 64, 64, 'nchw',
                  ((51, 5), ), 'train')) == 'torch'


def test_forced_impls_and_errors(monkeypatch):
    x, weights = _inputs()
    monkeypatch.setattr(dispatch, 'tune', None)
    assert resolve_impl(x, 'fft', weights) == 'fft'
    monkeypatch.setenv(IMPL_ENV, 'fft')
    assert resolve_impl(x, None, weights) == 'fft'
    monkeypatch.setenv(IMPL_ENV, 'cudnn')
    with pytest.raises(ValueError, match='cudnn'):
        resolve_impl(x, None, weights)
    with pytest.raises(RuntimeError, match='FFT needs'):
        resolve_impl(x.long(), 'fft', weights)


def test_env_forced_impl_is_the_one_that_runs(monkeypatch):
    calls = []

    def counting_fft(x, weights):
        calls.append(1)
        return _torch_multi(x, weights)

    _inject(monkeypatch, 'fft', counting_fft)
    monkeypatch.setattr(dispatch, 'tune', None)  # would raise if called
    monkeypatch.setenv(IMPL_ENV, 'fft')
    x, weights = _inputs()
    multi_depthwise_conv2d(x, weights)
    assert calls == [1]
    monkeypatch.setenv(IMPL_ENV, 'torch')
    multi_depthwise_conv2d(x, weights)
    assert calls == [1]


def test_jit_tracing_gets_torch(monkeypatch):
    monkeypatch.setattr(dispatch, 'tune', None)
    x, weights = _inputs(64, 64, grad=False)
    weights = [torch.randn(2, 1, 51, 5)]
    traced = torch.jit.trace(
        lambda x: multi_depthwise_conv2d(x, weights)[0], x, check_trace=False)
    assert 'aten::_convolution' in str(traced.graph)


def test_auto_never_offers_triton_for_cpu_tensors(monkeypatch):
    monkeypatch.setenv('TRITON_INTERPRET', '1')  # Triton could run them
    x, weights = _inputs()
    assert 'triton' not in dispatch.auto_candidates(x)
    assert resolve_impl(x, None, weights) in ('torch', 'fft')  # tuned
