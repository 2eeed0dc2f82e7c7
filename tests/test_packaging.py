"""The wheel ships the configs (``slak_mm/.mim``) and the LICENSE, an
editable build links them, ``slak_mm.get_config_path`` finds configs in a
checkout and in an installed wheel, and ``_base_ = 'slak_mm::...'`` bases
load and build.

The builds run offline from a copy of the working tree (setuptools and wheel
are in the venv; nothing is written into the checkout).
"""
import os
import os.path as osp
import shutil
import sys
import textwrap
import zipfile

import pytest

from slak_mm.config_path import get_config_path, list_configs
from tests.common import DEMO_CONFIG, ROOT
from tests.tool_runner import run_process, run_python

TOP_CONFIGS = ('upernet_slak_t_ade20k.py', 'upernet_slak_s_ade20k.py',
               'upernet_slak_b_ade20k.py', 'faster_rcnn_slak_t_fpn_voc0712.py',
               'cascade_mask_rcnn_slak_t_fpn_3x_coco.py')
# mmengine, mmcv, ... hidden: get_config_path must work before they load
HIDE_MM = textwrap.dedent('''
    import importlib.abc, sys
    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('mmengine', 'mmcv', 'mmdet', 'mmseg'):
                raise ModuleNotFoundError(name, name=name)
    sys.meta_path.insert(0, Hide())
''')


def _source_copy(dst):
    """The files git would ship (tracked and untracked, not ignored)."""
    proc = run_process(['git', 'ls-files', '-co', '--exclude-standard', '-z'])
    assert proc.returncode == 0, proc.stderr
    files = proc.stdout.split('\0')
    for rel in filter(None, files):
        src = osp.join(ROOT, rel)
        if osp.isfile(src):  # not a file deleted in the working tree
            os.makedirs(osp.dirname(osp.join(dst, rel)), exist_ok=True)
            shutil.copy2(src, osp.join(dst, rel))
    return dst


def _python(code, pythonpath, cwd):
    proc = run_python(code, pythonpath=pythonpath, cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """A source copy, the wheel built from it and the wheel unpacked."""
    tmp = tmp_path_factory.mktemp('packaging')
    src = _source_copy(str(tmp / 'src'))
    proc = run_process([
        sys.executable, '-m', 'pip', 'wheel', '--no-deps',
        '--no-build-isolation', '--no-index', '-q', '-w',
        str(tmp / 'dist'), src
    ],
                       pythonpath=None,
                       timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel, ) = (tmp / 'dist').glob('slak_mm-*.whl')
    unpacked = tmp / 'site'
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(unpacked)
    return dict(src=src, wheel=wheel, site=str(unpacked))


def test_wheel_ships_configs_tools_and_license(built):
    with zipfile.ZipFile(built['wheel']) as zf:
        names = set(zf.namelist())
        metadata = zf.read(
            next(n for n in names
                 if n.endswith('.dist-info/METADATA'))).decode()
    mim = 'slak_mm/.mim/'
    for config in list_configs(osp.join(ROOT, 'configs')):
        assert mim + 'configs/' + config in names  # _base_, demo, ... too
    for config in TOP_CONFIGS + ('_base_/models/upernet_slak.py',
                                 '_base_/datasets/ade20k.py'):
        assert mim + 'configs/' + config in names
    assert {mim + 'tools/train.py', mim + 'model-index.yml'} <= names
    assert not any('__pycache__' in n for n in names)
    assert any(n.endswith('.dist-info/licenses/LICENSE') for n in names)
    assert 'License: MIT' in metadata.splitlines()
    assert 'License-File: LICENSE' in metadata.splitlines()
    # the wheel build copies into its build folder, not into the source
    assert not osp.exists(osp.join(built['src'], 'slak_mm', '.mim'))


def test_editable_build_links_the_checkout(built):
    # what `pip install -e .` runs (PEP 660), offline, in the copy
    _python(
        'from setuptools import build_meta; '
        'build_meta.build_editable("editable_dist")',
        pythonpath='',
        cwd=built['src'])
    mim = osp.join(built['src'], 'slak_mm', '.mim')
    for name in ('configs', 'tools', 'model-index.yml'):
        assert osp.islink(osp.join(mim, name))
        assert osp.samefile(osp.join(mim, name), osp.join(built['src'], name))


def test_get_config_path_in_the_checkout():
    expected = osp.join(ROOT, 'configs', 'upernet_slak_t_ade20k.py')
    for name in ('upernet_slak_t_ade20k.py', 'upernet_slak_t_ade20k'):
        assert osp.samefile(get_config_path(name), expected)
    demo = DEMO_CONFIG
    for name in ('demo/upernet_slak_demo_synthetic_ade20k.py',
                 'demo/upernet_slak_demo_synthetic_ade20k',
                 'upernet_slak_demo_synthetic_ade20k'):  # unique file name
        assert osp.samefile(get_config_path(name), demo)
    with pytest.raises(FileNotFoundError) as err:
        get_config_path('upernet_slak_x_ade20k')
    assert 'upernet_slak_t_ade20k.py' in str(err.value)  # close names
    assert osp.samefile(
        get_config_path('upernet_slak'),
        osp.join(ROOT, 'configs', '_base_', 'models', 'upernet_slak.py'))


def test_get_config_path_in_the_unpacked_wheel(built):
    site = built['site']
    out = _python(
        HIDE_MM + textwrap.dedent('''
        import slak_mm
        print(slak_mm.__file__)
        for name in ('upernet_slak_t_ade20k',
                     'demo/upernet_slak_demo_synthetic_ade20k.py',
                     '_base_/models/upernet_slak.py'):
            print(slak_mm.get_config_path(name))
        '''),
        pythonpath=site,
        cwd=site)  # not the checkout: nothing there can be found by accident
    package, *paths = out.split()
    assert osp.dirname(package) == osp.join(site, 'slak_mm')
    configs = osp.join(site, 'slak_mm', '.mim', 'configs')
    assert paths == [
        osp.join(configs, 'upernet_slak_t_ade20k.py'),
        osp.join(configs, 'demo', 'upernet_slak_demo_synthetic_ade20k.py'),
        osp.join(configs, '_base_', 'models', 'upernet_slak.py')
    ]


USER_CONFIG = '''
_base_ = ['slak_mm::_base_/models/upernet_slak.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(arch=dict(_delete_=True, depths=[1, 1, 1, 1],
                            dims=[8, 16, 24, 32]),
                  width_factor=1.0, kernel_size=(9, 9, 9, 7), sparse=False,
                  branch_norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[8, 16, 24, 32], channels=8, num_classes=3,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=24, channels=8, num_classes=3,
                        norm_cfg=norm_cfg))
'''


def test_slak_mm_scope_base_loads_and_builds_from_the_wheel(built, tmp_path):
    """``_base_ = 'slak_mm::_base_/...'`` in a user's config reads the
    wheel's ``.mim/configs`` and the model builds in mmseg's registry."""
    (tmp_path / 'user.py').write_text(USER_CONFIG)
    out = _python(
        textwrap.dedent('''
        import slak_mm  # makes mmengine read the slak_mm scope
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmseg.registry import MODELS
        cfg = Config.fromfile('user.py')
        assert cfg.model.get('_scope_') is None, cfg.model.get('_scope_')
        init_default_scope('mmseg')
        model = MODELS.build(cfg.model)
        print(type(model).__name__, type(model.backbone).__name__,
              model.backbone.out_channels)
        print(slak_mm.__file__)
        '''),
        pythonpath=built['site'],
        cwd=str(tmp_path))
    lines = out.strip().splitlines()
    assert lines[-2] == 'EncoderDecoder SLaK [8, 16, 24, 32]'
    assert lines[-1].startswith(built['site'])
