"""No checkpoint runs code, and a wrong or damaged file is an error.

Every entry point that reads a checkpoint gets a file whose pickle calls
``os.system`` (a real training checkpoint with one extra entry): each must
refuse it with a message naming the file and the global, and the payload
must not have run. Wrong files (a ResNet, another kernel size, a backbone
file, a weights-only file for ``--resume``) and damaged ones (empty,
truncated, garbage, a flipped bit) must stop with one line, before any
result is written.
"""
import json
import os
import os.path as osp

import pytest
import torch

from slak_mm.checkpoint import UnsafeCheckpointError, load_checkpoint_safely
from tests.common import DEMO_CONFIG as DEMO
from tests.common import ROOT, Payload, serve_folder
from tests.tool_runner import refusal, run_python, run_tool


@pytest.fixture(scope='module')
def env(tmp_path_factory, demo_trained, small_ade_root):
    """Tiny data, the session's trained demo checkpoint, a hostile copy of
    it, also served over HTTP on the loopback interface (``evil_url``;
    downloads go to the torch hub cache under ``torch_home``)."""
    root = tmp_path_factory.mktemp('safe')
    data = small_ade_root
    good = demo_trained['checkpoint']  # read only
    marker = str(root / 'PAYLOAD_RAN')
    checkpoint = load_checkpoint_safely(good)  # our own file
    checkpoint['meta']['extra'] = Payload(marker)
    evil = str(root / 'evil.pth')
    torch.save(checkpoint, evil)
    image = osp.join(
        data, 'images', 'validation',
        sorted(os.listdir(osp.join(data, 'images', 'validation')))[0])
    with serve_folder(str(root)) as base_url:
        yield dict(
            root=root,
            data=data,
            good=good,
            evil=evil,
            evil_url=f'{base_url}/evil.pth',
            torch_home=str(tmp_path_factory.mktemp('torch_home')),
            marker=marker,
            image=image)


def _data(env):
    return f'data_root={env["data"]}'


def _train(env, work_dir, *flags, options=()):
    """tools/train.py's command line: the demo for 2 iterations in
    ``work_dir`` with ``flags`` and more ``--cfg-options``."""
    return ('tools/train.py', DEMO, '--work-dir', str(work_dir), *flags,
            '--cfg-options', _data(env), *options, 'train_cfg.max_iters=2')


def _assert_refused(proc, env, path):
    assert proc.returncode != 0, proc.log[-2000:]
    assert 'Refused to load' in proc.stderr, proc.log[-2000:]
    assert path in proc.stderr
    assert 'posix.system' in proc.stderr or 'os.system' in proc.stderr
    assert '--unsafe-load' in proc.stderr
    assert 'Traceback' not in proc.stderr  # one line, not a stack
    assert not osp.exists(env['marker']), 'the pickled payload ran'


ENTRY_POINTS = {
    'test':
    lambda e, w:
    ('tools/test.py', DEMO, e['evil'], '--work-dir', w, '--cfg-options',
     _data(e)),
    'resume_path':
    lambda e, w: _train(e, w, '--resume', e['evil']),
    'load_from':
    lambda e, w: _train(e, w, options=[f'load_from={e["evil"]}']),
    'init_cfg':
    lambda e, w: _train(
        e,
        w,
        options=[
            'model.backbone.init_cfg.type=Pretrained',
            f'model.backbone.init_cfg.checkpoint={e["evil"]}'
        ]),
    'deploy':
    lambda e, w: ('tools/deploy.py', DEMO, e['evil'], osp.join(
        w, 'deploy.pth'), '--cfg-options', _data(e)),
    'image_demo':
    lambda e, w: ('demo/image_demo.py', e['image'], DEMO, e[
        'evil'], '--out-dir', w, '--device', 'cpu', '--cfg-options', _data(e)),
    'erf':
    lambda e, w:
    ('tools/analysis/erf.py', f'{DEMO}={e["evil"]}', '--synthetic', '1',
     '--size', '64', '--out-dir', w, '--device', 'cpu'),
    'get_flops':
    lambda e, w: ('tools/analysis/get_flops.py', DEMO, '--checkpoint', e[
        'evil'], '--shape', '64'),
    'convert':
    lambda e, w:
    ('tools/convert_checkpoint.py', e['evil'], osp.join(w, 'converted.pth')),
}


@pytest.mark.parametrize('source', ['evil', 'evil_url'])
@pytest.mark.parametrize('entry', sorted(ENTRY_POINTS))
def test_pickled_code_is_refused_everywhere(env, entry, source, tmp_path):
    # the URL is downloaded by the first tool and taken from the hub cache
    # by the others: both paths end in the safe loader
    proc = run_tool(
        *ENTRY_POINTS[entry](dict(env, evil=env[source]), str(tmp_path)),
        timeout=600,
        expect_ok=False,
        TORCH_HOME=env['torch_home'])
    _assert_refused(proc, env, env[source])
    assert not osp.exists(tmp_path / 'test_metrics.json')


@pytest.mark.parametrize('source', ['evil', 'evil_url'])
def test_auto_resume_through_last_checkpoint_is_refused(env, source, tmp_path):
    (tmp_path / 'last_checkpoint').write_text(env[source])
    proc = run_tool(
        *_train(env, tmp_path, '--resume'),
        expect_ok=False,
        TORCH_HOME=env['torch_home'])
    _assert_refused(proc, env, env[source])


def _mm_api(api, weights):
    """Build the model of an mm Python API with ``weights``, as a user
    would (the configs name slak_mm in custom_imports)."""
    from tests.common import DEMO_VOC_CONFIG
    cls_config = osp.join(ROOT, 'configs', 'imagenet', 'slak_t_in1k_eval.py')
    if api == 'MMSegInferencer':
        from mmseg.apis import MMSegInferencer
        return MMSegInferencer(DEMO, weights=weights, device='cpu')
    if api == 'mmseg.init_model':
        from mmseg.apis import init_model
        return init_model(DEMO, weights, device='cpu')
    if api == 'DetInferencer':
        from mmdet.apis import DetInferencer
        return DetInferencer(DEMO_VOC_CONFIG, weights=weights, device='cpu')
    if api == 'mmdet.init_detector':
        from mmdet.apis import init_detector
        return init_detector(DEMO_VOC_CONFIG, weights, device='cpu')
    if api == 'ImageClassificationInferencer':
        from mmpretrain.apis import ImageClassificationInferencer
        return ImageClassificationInferencer(
            cls_config, pretrained=weights, device='cpu')
    if api == 'mmpretrain.init_model':
        from mmpretrain.apis import init_model
        return init_model(cls_config, weights, device='cpu')
    if api == 'inferencer_config_from_weights':
        from mmseg.apis import MMSegInferencer
        return MMSegInferencer(None, weights=weights, device='cpu')
    raise KeyError(api)


MM_APIS = ('MMSegInferencer', 'mmseg.init_model', 'DetInferencer',
           'mmdet.init_detector', 'ImageClassificationInferencer',
           'mmpretrain.init_model', 'inferencer_config_from_weights')


@pytest.mark.parametrize('api', MM_APIS)
def test_mm_apis_refuse_a_hostile_url(env, api, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', env['torch_home'])
    with pytest.raises(UnsafeCheckpointError) as err:
        _mm_api(api, env['evil_url'])
    assert env['evil_url'] in str(err.value)
    assert 'posix.system' in str(err.value)
    assert not osp.exists(env['marker']), 'the pickled payload ran'


def test_custom_imports_alone_make_a_fresh_process_safe(env):
    # a user script that never imports slak_mm: the config's custom_imports
    # does, before mmengine reads the weights
    proc = run_python(
        'import sys\n'
        'from mmseg.apis import MMSegInferencer\n'
        'assert "slak_mm" not in sys.modules\n'
        f'MMSegInferencer({DEMO!r}, weights={env["evil_url"]!r}, '
        'device="cpu")\n',
        TORCH_HOME=env['torch_home'])
    assert proc.returncode != 0
    assert 'UnsafeCheckpointError' in proc.stderr, proc.stderr[-2000:]
    assert env['evil_url'] in proc.stderr
    assert not osp.exists(env['marker']), 'the pickled payload ran'


@pytest.fixture(scope='module')
def config_code(env):
    """The demo checkpoint whose stored configs (which mmengine executes on
    resume and when an inferencer takes its config from the weights) hold
    code; the checkpoint itself passes the pickle allow-list."""
    marker = str(env['root'] / 'CONFIG_CODE_RAN')
    code = f"\nimport os\nos.system('touch {marker}')\n"
    checkpoint = load_checkpoint_safely(env['good'])
    checkpoint['meta']['config'] = 'gpu_ids = [0]' + code
    checkpoint['message_hub']['runtime_info']['cfg'] += code
    path = str(env['root'] / 'config_code.pth')
    torch.save(checkpoint, path)
    return dict(path=path, marker=marker)


def test_config_code_is_refused_by_resume_and_inferencers(
        env, config_code, tmp_path):
    proc = run_tool(
        *_train(env, tmp_path, '--resume', config_code['path']),
        expect_ok=False)
    assert 'meta.config' in proc.stderr and 'import os' in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith('error: ')
    with pytest.raises(UnsafeCheckpointError, match='holds more than data'):
        _mm_api('inferencer_config_from_weights', config_code['path'])
    assert not osp.exists(config_code['marker']), 'the config code ran'


def test_unsafe_load_is_an_explicit_logged_opt_in(env, tmp_path):
    marker = tmp_path / 'ran'
    checkpoint = load_checkpoint_safely(env['good'])
    checkpoint['meta']['extra'] = Payload(str(marker))
    trusted = str(tmp_path / 'trusted.pth')
    torch.save(checkpoint, trusted)
    proc = run_tool(
        'tools/test.py',
        DEMO,
        trusted,
        '--work-dir',
        str(tmp_path),
        '--unsafe-load',
        '--cfg-options',
        _data(env),
        timeout=600)
    assert marker.exists()  # the user asked for it
    assert 'SLAK_MM_UNSAFE_LOAD=1: loading' in proc.log
    assert 'mIoU' in proc.stdout


def test_training_checkpoints_load_as_backbone_init_and_for_flops(env):
    # iter_N.pth holds mmengine's HistoryBuffer: allowed, unlike real code
    # the tool's smoke run as its own process
    proc = run_tool(
        'tools/analysis/get_flops.py',
        DEMO,
        '--checkpoint',
        env['good'],
        '--shape',
        '64',
        timeout=600,
        fresh_process=True)
    assert 'sparse' in proc.stdout
    from slak_mm.checkpoint import load_pretrained_backbone
    from slak_mm.models import SLaK
    backbone = SLaK(
        arch=dict(depths=[1, 1, 2, 1], dims=[24, 48, 96, 192]),
        kernel_size=(13, 11, 9, 7),
        small_kernel=3,
        width_factor=1.0,
        sparse=True)
    missing, unexpected = load_pretrained_backbone(backbone, env['good'])
    assert missing == [] and unexpected == []
    state = load_checkpoint_safely(env['good'])['state_dict']
    weight = 'stages.0.0.large_kernel.LoRA1.conv.weight'
    assert torch.equal(backbone.state_dict()[weight],
                       state['backbone.' + weight])


# ----------------------------------------------------------- wrong files
def _resnet_file(tmp_path):
    import torchvision
    path = str(tmp_path / 'resnet18.pth')
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def _backbone_only_file(env, tmp_path):
    state = load_checkpoint_safely(env['good'])['state_dict']
    path = str(tmp_path / 'backbone.pth')
    torch.save(
        {
            k[len('backbone.'):]: v
            for k, v in state.items() if k.startswith('backbone.')
        }, path)
    return path


def _other_kernel_file(env, tmp_path):
    state = load_checkpoint_safely(env['good'])['state_dict']
    key = 'backbone.stages.0.0.large_kernel.LoRA1.conv.weight'
    weight = state[key]
    state[key] = torch.zeros(*weight.shape[:2], weight.shape[2] + 2,
                             weight.shape[3])
    path = str(tmp_path / 'other_kernel.pth')
    torch.save({'state_dict': state}, path)
    return path


WRONG_FILES = {
    'resnet': (_resnet_file, 'does not fit the model'),
    'backbone_only': (_backbone_only_file, 'model.backbone.init_cfg'),
    'other_kernel': (_other_kernel_file, 'of another shape'),
}


def _test_tool(env, checkpoint, work_dir):
    """tools/test.py on the demo config with ``checkpoint``, which must
    fail."""
    proc = run_tool(
        'tools/test.py',
        DEMO,
        checkpoint,
        '--work-dir',
        str(work_dir),
        '--cfg-options',
        _data(env),
        expect_ok=False)
    assert proc.returncode != 0
    return proc


@pytest.mark.parametrize('kind', sorted(WRONG_FILES))
def test_wrong_checkpoint_for_test_is_an_error(env, kind, tmp_path):
    make, expected = WRONG_FILES[kind]
    path = make(tmp_path) if kind == 'resnet' else make(env, tmp_path)
    proc = _test_tool(env, path, tmp_path)
    assert expected in proc.stderr and path in proc.stderr, proc.log[-2000:]
    # a partial load is offered only where some keys fit
    assert ('allow_partial=True' in proc.stderr) == (kind == 'other_kernel')
    assert not osp.exists(tmp_path / 'test_metrics.json')


def test_wrong_checkpoint_for_load_from_and_image_demo(env, tmp_path):
    path = _resnet_file(tmp_path)
    train = run_tool(
        *_train(env, tmp_path, options=[f'load_from={path}']), expect_ok=False)
    assert 'does not fit the model' in train.stderr, train.log[-2000:]
    assert not osp.exists(tmp_path / 'iter_2.pth')
    demo = run_tool(
        'demo/image_demo.py',
        env['image'],
        DEMO,
        path,
        '--out-dir',
        str(tmp_path / 'vis'),
        '--device',
        'cpu',
        '--cfg-options',
        _data(env),
        timeout=600,
        expect_ok=False)
    assert 'does not fit the model' in demo.stderr, demo.log[-2000:]
    assert not osp.exists(tmp_path / 'vis')


def test_resume_from_a_weights_only_file_names_what_is_missing(env, tmp_path):
    state = load_checkpoint_safely(env['good'])['state_dict']
    path = str(tmp_path / 'weights.pth')
    torch.save({'state_dict': state}, path)
    proc = run_tool(*_train(env, tmp_path, '--resume', path), expect_ok=False)
    assert 'Cannot resume from' in proc.stderr, proc.log[-2000:]
    assert "'meta'" in proc.stderr and 'load_from=' in proc.stderr
    assert 'KeyError' not in proc.stderr


@pytest.mark.parametrize('key,value', [('iter', -5), ('epoch', 1.5),
                                       ('seed', 2**40)])
def test_resume_checks_the_values_that_drive_the_run(env, key, value,
                                                     tmp_path):
    checkpoint = load_checkpoint_safely(env['good'])
    checkpoint['meta'][key] = value
    path = str(tmp_path / 'edited.pth')
    torch.save(checkpoint, path)
    error = refusal(*_train(env, tmp_path, '--resume', path))
    assert f'meta.{key} is {value!r}' in error and path in error


def test_resume_at_the_end_of_training_says_so(env, tmp_path):
    proc = run_tool(*_train(env, tmp_path, '--resume', env['good']))
    assert 'is at iter 300, the end of training' in proc.log
    assert not osp.exists(tmp_path / 'iter_2.pth')


def test_convert_refuses_a_file_without_slak_weights(tmp_path):
    path = _resnet_file(tmp_path)
    out = tmp_path / 'out.pth'
    proc = run_tool(
        'tools/convert_checkpoint.py',
        path,
        str(out),
        timeout=600,
        expect_ok=False,
        fresh_process=True)  # the tool's smoke run
    assert proc.returncode != 0
    assert 'holds no SLaK backbone weights' in proc.stderr
    assert not out.exists()


def _damaged(kind, good, tmp_path):
    data = open(good, 'rb').read()
    path = tmp_path / f'{kind}.pth'
    if kind == 'empty':
        data = b''
    elif kind == 'truncated':
        data = data[:len(data) // 2]
    elif kind == 'garbage':
        data = b'not a checkpoint at all\n' * 10
    elif kind == 'bitflip':  # inside a tensor's bytes: only the CRC sees it
        data = bytearray(data)
        data[len(data) // 3] ^= 0x10
        data = bytes(data)
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize('kind,expected',
                         [('empty', 'is empty'),
                          ('truncated', 'truncated or corrupt'),
                          ('garbage', 'not a PyTorch checkpoint'),
                          ('bitflip', 'fails its CRC check')])
def test_damaged_files_give_one_line(env, kind, expected, tmp_path):
    from slak_mm.checkpoint import (DamagedCheckpointError,
                                    load_checkpoint_safely)
    path = _damaged(kind, env['good'], tmp_path)
    with pytest.raises(DamagedCheckpointError, match=expected) as err:
        load_checkpoint_safely(path)
    assert path in str(err.value) and '\n' not in str(err.value)


def test_damaged_file_into_test_tool_writes_no_metrics(env, tmp_path):
    path = _damaged('bitflip', env['good'], tmp_path)
    proc = _test_tool(env, path, tmp_path)
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and 'CRC' in last and path in last
    assert not osp.exists(tmp_path / 'test_metrics.json')


# ------------------------------------------------- in-process mask checks
def test_load_without_masks_takes_masks_from_the_zeros(env, mm_log):
    from mmengine.runner.checkpoint import _load_checkpoint_to_model

    from slak_mm.apis import build_model
    from slak_mm.checkpoint import fit_checkpoint
    from slak_mm.config import load_config
    cfg = load_config(DEMO, {'data_root': env['data']})
    model = build_model(cfg)
    checkpoint = load_checkpoint_safely(env['good'])
    state = {
        k: v
        for k, v in checkpoint['state_dict'].items() if not k.endswith('_mask')
    }
    key = 'backbone.stages.1.0.large_kernel.LoRA2.conv.weight'
    state[key] = state[key].clone()
    state[key].view(-1)[::3] = 0  # a zero pattern unlike the model's masks
    file = {'state_dict': state}
    fitting, derived = fit_checkpoint(model, file, 'no_masks.pth')
    assert derived > 0 and fitting == len(model.state_dict())
    _load_checkpoint_to_model(model, file, strict=True)
    loaded = model.state_dict()
    assert torch.equal(loaded[key + '_mask'], state[key] != 0)
    assert torch.equal(loaded[key], state[key])  # nothing extra zeroed
    assert any('taken from the zeros' in r.getMessage() for r in mm_log)


def test_partial_load_is_an_opt_in(env, tmp_path, mm_log):
    from slak_mm.apis import build_model
    from slak_mm.checkpoint import CheckpointMismatchError, fit_checkpoint
    from slak_mm.config import load_config
    cfg = load_config(DEMO, {'data_root': env['data']})
    model = build_model(cfg)
    state = load_checkpoint_safely(env['good'])['state_dict']
    state = {k: v for k, v in state.items() if k.startswith('backbone.')}
    with pytest.raises(CheckpointMismatchError, match='missing: decode_head'):
        fit_checkpoint(model, {'state_dict': dict(state)}, 'bb.pth')
    fitting, _ = fit_checkpoint(
        model, {'state_dict': dict(state)}, 'bb.pth', allow_partial=True)
    assert 0 < fitting < len(model.state_dict())
    assert any('Partial load' in r.getMessage() for r in mm_log)


def test_alias_keys_of_a_trained_model_fit(tmp_path):
    """DDQ-DETR attaches its head's branches to its decoder too while it
    trains: the file holds them under both names (one tensor, shared), a
    fresh model only under the first. They fit; a real extra key does not."""
    from slak_mm.checkpoint import CheckpointMismatchError, fit_checkpoint
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    trained = torch.nn.Sequential(torch.nn.Linear(2, 2))
    trained.alias = trained[0]  # what training adds
    torch.save({'state_dict': trained.state_dict()}, tmp_path / 'a.pth')
    file = torch.load(tmp_path / 'a.pth', weights_only=True)
    assert set(file['state_dict']) == {
        '0.weight', '0.bias', 'alias.weight', 'alias.bias'
    }
    assert fit_checkpoint(model, file, 'a.pth') == (2, 0)
    file['state_dict']['alias.bias'] = file['state_dict']['0.bias'].clone()
    with pytest.raises(CheckpointMismatchError, match='1 unexpected'):
        fit_checkpoint(model, file, 'a.pth')


def test_test_metrics_json_only_after_a_fitting_load(env, tmp_path):
    proc = run_tool(
        'tools/test.py',
        DEMO,
        env['good'],
        '--work-dir',
        str(tmp_path),
        '--cfg-options',
        _data(env),
        timeout=600)
    with open(tmp_path / 'test_metrics.json') as f:
        assert 'mIoU' in json.load(f)['metrics']
    assert 'do not match exactly' not in proc.log
