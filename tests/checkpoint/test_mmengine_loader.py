"""mmengine reads checkpoints through slak_mm's safe loader, whatever the
source: every scheme registered in mmengine's ``CheckpointLoader`` gets a
hostile file (its pickle calls ``os.system``) and must refuse it in one line
naming the source, without running it. The schemes are read from the
registry, so a scheme a newer mmengine (or any package) adds fails here
until it has a case.

Remote sources are real where they can be on a machine without network: an
HTTP server on the loopback interface (a real download), torch's hub cache
(how ``https://`` and the named schemes serve a file offline), and stand-ins
only for the two storage clients that cannot be installed here (``pavi``,
``petrel_client``), which hand mmengine's own loaders the file's bytes.
"""
import io
import os
import os.path as osp
import shutil
import sys
import types

import pytest
import torch
from mmengine.runner import CheckpointLoader
from mmengine.runner import checkpoint as mm_checkpoint

import slak_mm  # noqa: F401  (replaces the loader)
from slak_mm.checkpoint import (MMENGINE_LOADER, CheckpointError,
                                UnsafeCheckpointError, mmengine_loader,
                                use_safe_mmengine_loader)
from slak_mm.checkpoint.remote import (CheckpointDownloadError,
                                       cached_checkpoint_path)
from tests.common import Payload, free_port, serve_folder


class NotAllowed:
    """A class a checkpoint may not unpickle."""


def test_mmengine_still_has_the_replaced_functions():
    for name in mmengine_loader.MMENGINE_READERS:
        assert getattr(mm_checkpoint, name) is getattr(
            mmengine_loader,
            name), (f'mmengine.runner.checkpoint.{name} is not slak_mm\'s: '
                    f'slak_mm/checkpoint/mmengine_loader.py must route '
                    f'mmengine\'s checkpoint reads another way')


@pytest.mark.parametrize('name',
                         [MMENGINE_LOADER, 'load_url', 'load_from_http'])
def test_a_missing_function_is_a_clear_error(monkeypatch, name):
    monkeypatch.delattr(mm_checkpoint, name)
    with pytest.raises(ImportError, match=f'no {name}'):
        use_safe_mmengine_loader()


def test_wrapping_twice_keeps_one_wrapper():
    use_safe_mmengine_loader()
    assert mmengine_loader._mmengine_load_checkpoint is not \
        mmengine_loader._load_checkpoint
    assert CheckpointLoader.load_checkpoint.__func__ is \
        mmengine_loader._load_checkpoint


def test_bytes_are_refused_as_a_file_is(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={}, meta=NotAllowed()), path)
    with open(path, 'rb') as f:  # what the storage schemes pass
        data = f.read()
    for source in (data, io.BytesIO(data)):
        with pytest.raises(UnsafeCheckpointError, match='NotAllowed'):
            getattr(mm_checkpoint, MMENGINE_LOADER)(source)


# ------------------------------------------------------ every scheme
class Sources:
    """A hostile checkpoint, and where each scheme finds it."""

    def __init__(self, tmp_path, base_url):
        self.marker = str(tmp_path / 'PAYLOAD_RAN')
        self.served = tmp_path / 'served'
        self.served.mkdir()
        self.evil = str(self.served / 'evil.pth')
        torch.save(
            dict(
                state_dict=dict(w=torch.ones(2)),
                meta=dict(x=Payload(self.marker))), self.evil)
        self.base_url = base_url

    def cached(self, url):
        """``url``, its file put in torch's hub cache (as a earlier
        download would have left it)."""
        cached = cached_checkpoint_path(url)
        os.makedirs(osp.dirname(cached), exist_ok=True)
        shutil.copy(self.evil, cached)
        return url, [url, cached]

    def named(self, prefix, table):
        """A ``prefix`` name whose URL is in mmengine's ``table``, cached."""
        name, url = next(
            (k, v) for k, v in table().items() if v.startswith('http'))
        return f'{prefix}{name}', self.cached(url)[1]


def _pavi(sources, monkeypatch):
    # pavi's model cloud: mmengine asks it for a model and downloads it
    class Model:
        name = 'evil.pth'

        def download(self, path):
            shutil.copy(sources.evil, path)

    modelcloud = types.SimpleNamespace(get=lambda path: Model())
    monkeypatch.setitem(sys.modules, 'pavi',
                        types.SimpleNamespace(modelcloud=modelcloud))
    return 'pavi://models/evil.pth', ['pavi://models/evil.pth']


def _petrel(sources, monkeypatch, uri):
    # petrel's client: mmengine's PetrelBackend reads the bytes with Get()
    class Client:

        def __init__(self, **kwargs):
            pass

        def Get(self, path):
            with open(sources.evil, 'rb') as f:
                return f.read()

    monkeypatch.setitem(
        sys.modules, 'petrel_client',
        types.SimpleNamespace(client=types.SimpleNamespace(Client=Client)))
    return uri, [uri]


#: scheme prefix -> (sources, monkeypatch) -> (filename, what the refusal
#: must name)
SCHEME_CASES = {
    '': lambda s, m: (s.evil, [s.evil]),
    'http://':  # a real download from the loopback server
    lambda s, m: (f'{s.base_url}/evil.pth', [
        f'{s.base_url}/evil.pth',
        cached_checkpoint_path(f'{s.base_url}/evil.pth')
    ]),
    'https://':  # offline: torch.hub serves it from its cache
    lambda s, m: s.cached('https://models.example.invalid/evil.pth'),
    'torchvision://':
    lambda s, m: s.named('torchvision://', mm_checkpoint.
                         get_torchvision_models),
    'modelzoo://':
    lambda s, m: s.named('modelzoo://', mm_checkpoint.get_torchvision_models),
    'open-mmlab://':
    lambda s, m: s.named('open-mmlab://', mm_checkpoint.get_external_models),
    'openmmlab://':
    lambda s, m: s.named('openmmlab://', mm_checkpoint.get_external_models),
    'mmcls://':
    lambda s, m: s.named('mmcls://', mm_checkpoint.get_mmcls_models),
    'pavi://':
    _pavi,
    r'(\S+\:)?s3://':
    lambda s, m: _petrel(s, m, 's3://bucket/evil.pth'),
    r'(\S+\:)?petrel://':
    lambda s, m: _petrel(s, m, 'cluster:petrel://bucket/evil.pth'),
}


@pytest.fixture
def sources(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    served = tmp_path / 'served'
    served.mkdir()
    with serve_folder(str(served)) as base_url:
        shutil.rmtree(served)
        yield Sources(tmp_path, base_url)


def test_every_registered_scheme_has_a_case():
    uncovered = sorted(set(CheckpointLoader._schemes) - set(SCHEME_CASES))
    assert not uncovered, (
        f'checkpoint schemes without a hostile-file case: {uncovered}. '
        f'Find out how each reads its file, make it read through '
        f'slak_mm.checkpoint.load_checkpoint_safely (mmengine_loader.py) '
        f'and add a case here.')


@pytest.mark.parametrize('scheme', sorted(CheckpointLoader._schemes))
def test_every_scheme_refuses_pickled_code(scheme, sources, monkeypatch):
    filename, named = SCHEME_CASES[scheme](sources, monkeypatch)
    assert CheckpointLoader._get_checkpoint_loader(filename) is \
        CheckpointLoader._schemes[scheme]  # the case reaches its scheme
    with pytest.raises(UnsafeCheckpointError) as err:
        CheckpointLoader.load_checkpoint(filename)
    message = str(err.value)
    assert 'Refused to load' in message and 'posix.system' in message
    assert '\n' not in message
    for name in named:
        assert name in message, (name, message)
    assert not osp.exists(sources.marker), 'the pickled payload ran'


def test_a_download_is_read_from_the_cache_afterwards(sources):
    good = str(sources.served / 'good.pth')
    torch.save(dict(state_dict=dict(w=torch.arange(3.))), good)
    url = f'{sources.base_url}/good.pth'
    first = CheckpointLoader.load_checkpoint(url)
    os.remove(good)  # the server no longer has it: the cache serves it
    again = CheckpointLoader.load_checkpoint(url)
    assert torch.equal(first['state_dict']['w'], again['state_dict']['w'])
    assert os.listdir(osp.dirname(cached_checkpoint_path(url))) == [
        'good.pth'
    ]  # no partial download left beside it


def test_uncached_url_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    url = f'http://127.0.0.1:{free_port()}/models/slak.pth'  # nobody there
    with pytest.raises(CheckpointDownloadError) as err:
        CheckpointLoader.load_checkpoint(url)
    cached = cached_checkpoint_path(url)
    message = str(err.value)
    assert url in message and cached in message and 'refused' in message
    assert '\n' not in message
    assert not osp.exists(osp.dirname(cached)) or not os.listdir(
        osp.dirname(cached))


def test_a_damaged_cached_file_says_how_to_download_again(sources):
    url = 'https://models.example.invalid/cut.pth'
    cached = cached_checkpoint_path(url)
    os.makedirs(osp.dirname(cached))
    with open(sources.evil, 'rb') as f, open(cached, 'wb') as out:
        out.write(f.read()[:100])
    with pytest.raises(CheckpointError, match=f'Delete {cached}'):
        CheckpointLoader.load_checkpoint(url)


@pytest.fixture
def unknown_scheme(monkeypatch, sources):
    """A scheme another package registers, whose loader unpickles
    anything."""
    monkeypatch.setattr(CheckpointLoader, '_schemes',
                        dict(CheckpointLoader._schemes))

    def load_from_somewhere(filename, map_location=None):
        return torch.load(sources.evil, weights_only=False)

    CheckpointLoader.register_scheme('somewhere://', load_from_somewhere)
    return 'somewhere://evil.pth'


def test_an_unknown_scheme_is_refused(unknown_scheme, sources):
    with pytest.raises(UnsafeCheckpointError) as err:
        CheckpointLoader.load_checkpoint(unknown_scheme)
    assert 'load_from_somewhere' in str(err.value)
    assert unknown_scheme in str(err.value)
    assert not osp.exists(sources.marker)


def test_an_unknown_scheme_runs_with_the_opt_in(unknown_scheme, sources,
                                                monkeypatch, mm_log):
    monkeypatch.setenv('SLAK_MM_UNSAFE_LOAD', '1')
    CheckpointLoader.load_checkpoint(unknown_scheme)
    assert osp.exists(sources.marker)  # the user asked for it
    assert any('load_from_somewhere' in r.getMessage() for r in mm_log)


# ------------------------------------------- config text mmengine executes
@pytest.mark.parametrize('entry', [('meta', 'config'), ('meta', 'cfg'),
                                   ('message_hub', 'runtime_info', 'cfg')])
def test_config_text_with_code_is_refused(entry, tmp_path):
    marker = tmp_path / 'CONFIG_CODE_RAN'
    checkpoint = dict(state_dict=dict(w=torch.ones(1)))
    node = checkpoint
    for key in entry[:-1]:
        node = node.setdefault(key, {})
    node[entry[-1]] = (f"model = dict(type='X')\n"
                       f"gpu_ids = __import__('os').system('touch {marker}')")
    path = str(tmp_path / 'config_code.pth')
    torch.save(checkpoint, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        CheckpointLoader.load_checkpoint(path)
    assert '.'.join(entry) in str(err.value) and 'line 2' in str(err.value)
    assert not marker.exists()
