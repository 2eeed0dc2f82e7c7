"""The compatibility sweep (tools/compat_sweep.py, slak_mm.compat) on a
fixed sample: three packaged families, one per framework, with SLaK put in
by the recipe, each trained one step and tested in a child process of its
own; a deliberately broken config reported with its cause; a trial that
hangs, crashes or eats memory reported without stopping the sweep. The
full sweep is ``make compat`` (docs/compatibility.md)."""
import json
import os
import os.path as osp
import time

import pytest
from mmengine.config import Config

from slak_mm.compat import Family, Result
from slak_mm.compat import sweep as sweep_module
from slak_mm.compat.data import use_synthetic_data
from slak_mm.compat.report import render_report, summary
from slak_mm.datasets.synthetic import SYNTHETIC_LAYOUTS, generate_coco
from tests.tool_runner import run_tool

#: Cheap families of each framework that train and test with SLaK.
SAMPLE = ('mmdet/retinanet', 'mmseg/sem_fpn', 'mmpretrain/resnet')


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    """The tool on the sample: its output and the rows it kept."""
    work = tmp_path_factory.mktemp('compat')
    # a process of its own, as `make compat` runs it: the sweep forks its
    # trials, and a fork of a process that has run backward (this test
    # process, after other tests) cannot run autograd ("Unable to handle
    # autograd's threading in combination with fork-based multiprocessing")
    proc = run_tool(
        'tools/compat_sweep.py',
        '--families',
        *SAMPLE,
        '--work-dir',
        work,
        '--timeout',
        '120',
        fresh_process=True)
    with open(work / 'results.json') as f:
        rows = {r['family']: Result(**r) for r in json.load(f)}
    return proc, rows, work


def test_sample_families_train_and_test(sample):
    proc, rows, work = sample
    assert set(rows) == set(SAMPLE), proc.stdout
    for family in SAMPLE:
        row = rows[family]
        assert row.outcome == 'pass', (row.message, row.where)
        assert row.metrics, family  # tested: its metrics came back
        run = work / family.replace('/', '__') / 'run'
        assert osp.isfile(run / 'test_metrics.json')
        assert not list(run.glob('*.pth'))  # deleted once tested
        # the user's config is the recipe, on the packaged base
        with open(work / family.replace('/', '__') / 'user_config.py') as f:
            text = f.read()
        assert f"'{family.split('/')[0]}::{row.config}'" in text
        assert "'slak_mm::_base_/slak_t_drop_in.py'" in text
        assert 'backbone=dict(_delete_=True, **_base_.slak_t)' in text
    # what the user sets: the neck's channels; the classifier's head
    assert rows['mmdet/retinanet'].user_sets == [
        'neck=dict(in_channels=_base_.slak_t_channels)'
    ]
    assert rows['mmpretrain/resnet'].user_sets == [
        'head=dict(in_channels=_base_.slak_t_channels[-1])'
    ]
    assert set(rows['mmdet/retinanet'].metrics) >= {'coco/bbox_mAP'}
    assert 'mIoU' in rows['mmseg/sem_fpn'].metrics
    assert 'pass' in proc.stdout and 'not written' in proc.stdout


def test_broken_config_reported_with_its_cause(sample, tmp_path):
    """A config of one's own (a path, not a packaged family) whose head
    has a class count the data does not have: the row names the stage and
    the one-line refusal; the page lists it under its cause."""
    broken = tmp_path / 'broken.py'
    broken.write_text(
        "_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'\n"
        'model = dict(bbox_head=dict(num_classes=81))\n')
    data = sample[2] / 'data'  # the sample's synthetic datasets
    roots = {k: str(data / v[0]) for k, v in SYNTHETIC_LAYOUTS.items()}
    family = Family('mmdet', 'broken', [str(broken)], config=str(broken))
    [row] = sweep_module.run_families([family], roots, str(tmp_path / 'w'))
    assert (row.outcome, row.stage) == ('fail', 'train'), row
    assert row.message.startswith(
        'ValueError: model.bbox_head.num_classes=81 but the train dataset '
        '(CocoDataset) has 80 classes')
    page = render_report([row])
    assert '| broken | ' in page and 'fail (train): [unclassified]' in page
    assert '### unclassified' in page and 'num_classes=81' in page
    assert summary([row])['all'] == dict(families=1, passed=0, na=0, failed=1)


def _hang(*args):
    time.sleep(60)


def _crash(*args):
    os.abort()


def _eat_memory(*args):
    return bytearray(64 * 2**30)  # far past the limit


@pytest.mark.parametrize(
    'trial,message',
    [(_hang, 'killed after the 1 s time limit'),
     (_crash, 'the process died of signal SIGABRT'),
     (_eat_memory, 'the process exited with status 1 and no result')],
    ids=['hang', 'crash', 'memory'])
def test_a_trial_cannot_stop_the_sweep(monkeypatch, tmp_path, trial, message):
    """Each trial runs in a forked child with a time limit and an address
    space limit: a hang is killed, a crash or a failed allocation ends only
    that child; the next family still runs."""
    monkeypatch.setattr(sweep_module, 'run_trial', trial)
    families = [
        Family('mmdet', 'first', config='x.py'),
        Family('mmdet', 'second', config='y.py')
    ]
    start = time.monotonic()
    rows = sweep_module.run_families(
        families, {}, str(tmp_path), timeout=1, memory_gb=1)
    assert time.monotonic() - start < 10
    assert [(r.family, r.stage, r.message)
            for r in rows] == [('mmdet/first', 'process', message),
                               ('mmdet/second', 'process', message)]
    if trial is _eat_memory:  # the child said why
        with open(osp.join(tmp_path, 'mmdet__first', 'log.txt')) as f:
            assert 'MemoryError' in f.read()


def test_fixed_causes_name_tests_that_exist():
    """docs/compatibility.md's 'Ours, fixed' names the test keeping each
    fix: they exist."""
    import ast

    from slak_mm.compat.causes import FIXED
    from tests.tool_runner import ROOT
    for _, _, test in FIXED:
        path, _, name = test.partition('::')
        with open(osp.join(ROOT, path)) as f:
            tree = ast.parse(f.read())
        assert name in {
            node.name
            for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
        }, test


def test_a_one_class_detector_keeps_one_class_its_test_image_shows(tmp_path):
    """A one-class detector on data the generator does not write (the MOT,
    WIDER FACE, CrowdHuman configs): the stand-in has one class, one that
    both synthetic splits show (was: the first drawn class, which the one
    test image did not show: "none of its 3 annotations is usable")."""
    roots = {'coco': generate_coco(str(tmp_path), num_train=2, num_val=1)}
    cfg = Config(
        dict(
            default_scope='mmdet',
            model=dict(
                type='RetinaNet',
                bbox_head=dict(type='RetinaHead', num_classes=1)),
            **{
                f'{split}_dataloader':
                dict(
                    dataset=dict(
                        type='CocoDataset',
                        data_root='data/MOT17',
                        ann_file=f'annotations/half-{split}_cocoformat.json',
                        metainfo=dict(classes=('pedestrian', )),
                        pipeline=[]))
                for split in ('train', 'test')
            }))
    assert use_synthetic_data(cfg, 'mmdet', roots)
    dataset = cfg.test_dataloader.dataset
    assert (dataset.type, dataset.data_root) == ('CocoDataset', roots['coco'])
    [name] = dataset.metainfo['classes']
    assert cfg.model.bbox_head.num_classes == 1
    with open(osp.join(roots['coco'], dataset.ann_file)) as f:
        coco = json.load(f)
    ids = {c['name']: c['id'] for c in coco['categories']}
    assert ids[name] in {a['category_id'] for a in coco['annotations']}
