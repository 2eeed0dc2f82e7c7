"""apis.check_backbone_neck: a neck or head that does not fit the SLaK
backbone is refused from the config, naming both sides and the fix; so is
a head whose num_classes does not fit the data (check_num_classes)."""
import glob
import os.path as osp

import pytest

from slak_mm.config import (CHECKS, backbone_neck_problems,
                            check_backbone_neck, check_num_classes,
                            checks_to_run, head_num_classes, load_config,
                            slak_feature_maps)
from slak_mm.models.backbones.slak import SLaK
from tests.common import DEMO_CONFIG
from tests.tool_runner import ROOT, run_tool

CONFIGS = [
    *(f'integrations/{osp.basename(path)}'
      for path in sorted(glob.glob(f'{ROOT}/configs/integrations/*.py'))),
    'upernet_slak_t_ade20k.py',
    'cascade_mask_rcnn_slak_t_fpn_3x_coco.py',
    'demo/faster_rcnn_slak_demo_synthetic_voc.py',
]


def _cfg(name, **options):
    return load_config(f'{ROOT}/configs/{name}', options)


@pytest.mark.parametrize('name', CONFIGS)
def test_shipped_configs_pass(name):
    cfg = _cfg(name)
    assert check_backbone_neck(cfg) is None  # raises on a mismatch
    assert check_num_classes(cfg) is None


def test_feature_maps_match_the_built_backbone():
    cfg = dict(
        type='SLaK',
        arch=dict(depths=[1, 1, 1, 1], dims=[16, 32, 64, 128]),
        kernel_size=(7, 7, 7, 7),
        small_kernel=3,
        width_factor=1.5,
        out_indices=(1, 3))
    maps = slak_feature_maps(cfg)
    backbone = SLaK(**{k: v for k, v in cfg.items() if k != 'type'})
    assert [m['channels'] for m in maps] == backbone.out_channels == [48, 192]
    assert [m['stride'] for m in maps] == [8, 32]
    # the defaults are SLaK's: SLaK-T, width 1.3, four outputs
    assert [m['channels'] for m in slak_feature_maps(dict(type='SLaK'))
            ] == [124, 249, 499, 998]


@pytest.mark.parametrize(
    'name,options,expected',
    [
        # 3 outputs, RetinaNet's start_level=1 kept: P4-P8 under P3-P7 anchors
        ('integrations/retinanet_slak_t_fpn_1x_coco.py', {
            'model.backbone.out_indices': (1, 2, 3),
            'model.neck.in_channels': [249, 499, 998]
        }, [
            'model.bbox_head.anchor_generator.strides=[8, 16, 32, 64, 128]',
            'strides [16, 32, 64, 128, 256]', 'model.neck.start_level=0'
        ]),
        # the ResNet channels kept
        ('integrations/retinanet_slak_t_fpn_1x_coco.py', {
            'model.neck.in_channels': [256, 512, 1024, 2048]
        }, [
            'model.neck.in_channels=[256, 512, 1024, 2048]',
            'set model.neck.in_channels=[124, 249, 499, 998]'
        ]),
        ('integrations/mask_rcnn_slak_t_fpn_1x_coco.py', {
            'model.neck.start_level': 1
        }, [
            'model.rpn_head.anchor_generator.strides',
            'model.roi_head.bbox_roi_extractor.featmap_strides=[4, 8, 16, 32]',
            'model.roi_head.mask_roi_extractor.featmap_strides'
        ]),
        ('integrations/mask_rcnn_slak_t_fpn_1x_coco.py', {
            'model.neck.out_channels': 128
        }, [
            'model.rpn_head.in_channels=256',
            'set model.rpn_head.in_channels=128',
            'set model.roi_head.bbox_roi_extractor.out_channels=128'
        ]),
        ('integrations/deeplabv3plus_slak_t_ade20k.py', {
            'model.decode_head.c1_in_channels': 256,
            'model.auxiliary_head.in_channels': 1024
        }, [
            'model.decode_head.c1_in_channels=256',
            'set model.decode_head.c1_in_channels=124',
            'model.auxiliary_head.in_channels=1024',
            'set model.auxiliary_head.in_channels=499'
        ]),
        ('integrations/deeplabv3plus_slak_t_ade20k.py', {
            'model.backbone.out_indices': (2, 3)
        }, ['model.decode_head.in_index=3', 'only 2 feature maps']),
        # stride-4 stage left out: FPNHead's feature_strides are off
        ('integrations/fpn_slak_t_ade20k.py', {
            'model.backbone.out_indices': (1, 2, 3),
            'model.neck.in_channels': [249, 499, 998]
        }, [
            'model.decode_head.feature_strides=[4, 8, 16, 32]',
            'set model.backbone.out_indices=(0, 1, 2, 3) and '
            'model.neck.in_channels=[124, 249, 499, 998]'
        ]),
        ('upernet_slak_t_ade20k.py', {
            'model.backbone.width_factor': 1.0
        }, [
            'model.decode_head.in_channels=[124, 249, 499, 998]',
            'set model.decode_head.in_channels=[96, 192, 384, 768]'
        ]),
    ],
    ids=[
        'retinanet_strides', 'retinanet_channels', 'mask_rcnn_strides',
        'mask_rcnn_head_channels', 'deeplabv3plus_c1_aux', 'in_index',
        'sem_fpn_strides', 'upernet_width'
    ])
def test_mismatch_is_refused(name, options, expected):
    with pytest.raises(ValueError) as err:
        check_backbone_neck(_cfg(name, **options))
    for text in expected:
        assert text in str(err.value), str(err.value)


def test_other_backbones_are_not_checked():
    cfg = _cfg('integrations/fpn_slak_t_ade20k.py')
    cfg.model.backbone = dict(type='ResNetV1c', depth=50)
    cfg.model.neck.in_channels = [1, 2, 3, 4]  # not ours to judge
    assert check_backbone_neck(cfg) is None
    slak = _cfg('integrations/fpn_slak_t_ade20k.py')
    slak.model.neck.in_channels = [1, 2, 3, 4]  # with SLaK it is refused
    with pytest.raises(ValueError):
        check_backbone_neck(slak)


def test_heads_that_read_every_map_are_not_judged_by_in_index():
    """Was: mmseg's Mask2Former (no ``in_index``, reads all four maps) was
    refused with the advice ``in_channels=[128]``, which would not build."""
    cfg = _cfg('integrations/mask2former_slak_t_ade20k.py')
    assert 'in_index' not in cfg.model.decode_head
    assert check_backbone_neck(cfg) is None
    # a BaseDecodeHead without in_index reads the class default (-1)
    upernet = _cfg('upernet_slak_t_ade20k.py',
                   **{'model.auxiliary_head.in_channels': 7})
    upernet.model.auxiliary_head.pop('in_index')
    with pytest.raises(ValueError, match=r'in_index=-1, but feature map -1'):
        check_backbone_neck(upernet)


def test_skip_checks_names_the_checks(tmp_path):
    """Every pre-run check has an off switch: ``skip_checks`` in the config
    (or ``--skip-checks``); an unknown name is refused naming the known."""
    cfg = _cfg('integrations/fpn_slak_t_ade20k.py',
               **{'model.neck.in_channels': [1, 2, 3, 4]})
    assert checks_to_run(cfg) == set(CHECKS)
    assert checks_to_run(cfg, ['model']) == set(CHECKS) - {'model'}
    assert cfg.skip_checks == ['model']  # recorded in the run's config
    cfg.skip_checks = ['datasets']
    assert checks_to_run(cfg, ['model']) == {'loading', 'schedule'}
    cfg.skip_checks = ['modle']
    with pytest.raises(ValueError, match=r"\['modle'\].*'datasets'.*'model'"):
        checks_to_run(cfg)


def test_skip_checks_flag_turns_the_check_off(small_ade_root, tmp_path):
    """``--skip-checks model``: the run goes on to build (and here fails in
    the framework, as it would without our check)."""
    args = [
        'tools/train.py', DEMO_CONFIG, '--work-dir', tmp_path, '--cfg-options',
        f'data_root={small_ade_root}',
        'model.decode_head.in_channels=[1,2,3,4]'
    ]
    checked = run_tool(*args, expect_ok=False)
    assert checked.returncode == 1
    assert 'error: The neck / heads do not fit the SLaK' in checked.stderr
    skipped = run_tool(*args, '--skip-checks', 'model', expect_ok=False)
    assert skipped.returncode != 0
    assert 'pre-run checks skipped: model' in skipped.log
    assert 'do not fit the SLaK backbone' not in skipped.log
    assert 'channels' in skipped.log  # the framework's own shape error


def test_wrapper_head_without_in_channels_is_not_judged():
    """KNet's ``IterativeDecodeHead`` (a BaseDecodeHead) leaves
    ``in_channels`` to its inner heads: nothing to compare (was: refused,
    "set in_channels=998")."""
    cfg = _cfg('upernet_slak_t_ade20k.py')
    cfg.model.decode_head = dict(
        type='IterativeDecodeHead',
        num_stages=3,
        kernel_update_head=[],
        kernel_generate_head=dict(cfg.model.decode_head))
    assert check_backbone_neck(cfg) is None
    cfg.model.decode_head.kernel_generate_head = None
    cfg.model.decode_head.in_channels = 7  # set, it is judged
    with pytest.raises(ValueError, match='decode_head.in_channels=7'):
        check_backbone_neck(cfg)


@pytest.mark.parametrize(
    'name,options,expected',
    [
        ('upernet_slak_t_ade20k.py', {
            'model.decode_head.num_classes': 19
        }, 'model.decode_head.num_classes=19 but the train dataset '
         '(ADE20KDataset) has 150 classes (wall, building, sky, ...): set '
         'num_classes=150 there'),
        # cascade stages and the mask head, each named
        ('cascade_mask_rcnn_slak_t_fpn_3x_coco.py', {
            'model.roi_head.mask_head.num_classes': 81
        }, 'model.roi_head.mask_head.num_classes=81 but the train dataset '
         '(CocoDataset) has 80 classes'),
        # the config's own class list counts, not the dataset class's
        ('demo/faster_rcnn_slak_demo_synthetic_voc.py', {
            'train_dataloader.dataset.datasets.0.metainfo.classes':
            ('cat', 'dog')
        }, 'model.roi_head.bbox_head.num_classes=20 but the train dataset '
         '(VOCDataset) has 2 classes (cat, dog)'),
    ],
    ids=['seg', 'cascade_mask', 'metainfo_classes'])
def test_num_classes_that_do_not_fit_the_data_are_refused(
        name, options, expected):
    with pytest.raises(ValueError) as err:
        check_num_classes(_cfg(name, **options))
    assert str(err.value).startswith(expected), str(err.value)


def test_convnext_layer_decay_constructor_refused_with_ours():
    """mmdet's ConvNeXt configs train with a layer-decay constructor that
    raises a bare NotImplementedError for any backbone not named ConvNeXt:
    refused before the run, the fix is ours (the same rules)."""
    cfg = load_config(
        'mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'
    )
    cfg.model.backbone = dict(type='SLaK', arch='tiny')
    cfg.model.neck.in_channels = [124, 249, 499, 998]
    problems = backbone_neck_problems(cfg)
    assert [p.key for p in problems] == ['optim_wrapper.constructor']
    assert problems[0].fixes == ({
        'optim_wrapper.constructor':
        'SLaKLearningRateDecayOptimizerConstructor'
    }, )
    with pytest.raises(ValueError, match="constructor='SLaKLearning"):
        check_backbone_neck(cfg)
    cfg.merge_from_dict(problems[0].fixes[0])
    assert check_backbone_neck(cfg) is None


def test_panoptic_data_counts_things_for_instance_heads():
    """Panoptic FPN's RoI heads have the 80 thing classes of COCO
    panoptic's 133 (was refused: 'has 133 classes'); 81 is refused."""
    cfg = load_config('mmdet::panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py')
    assert check_num_classes(cfg) is None
    cfg.model.roi_head.bbox_head.num_classes = 81
    with pytest.raises(
            ValueError,
            match='bbox_head.num_classes=81 but the '
            'train dataset .CocoPanopticDataset. has 133'):
        check_num_classes(cfg)


def test_num_classes_refused_by_train_before_the_run(tmp_path):
    """Was: more logits than classes trained on and skewed the metrics
    silently; fewer failed on the first label beyond them."""
    result = run_tool(
        'tools/train.py',
        DEMO_CONFIG,
        '--work-dir',
        tmp_path,
        '--cfg-options',
        'model.decode_head.num_classes=151',
        'model.auxiliary_head.num_classes=151',
        expect_ok=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        'error: model.decode_head.num_classes=151, '
        'model.auxiliary_head.num_classes=151 but the train dataset '
        '(ADE20KDataset) has 150 classes')


#: Stock configs with SLaK-T swapped in as the documented recipe does, each
#: with a wrong setting (refused with the fix, named) and the fixed one
#: (passes): (stock config, wrong options, expected texts, fixed options).
STOCK = {
    'rtmdet_four_maps': ('mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py', {
        'model.neck.in_channels': [124, 249, 499, 998]
    }, [
        'model.bbox_head.anchor_generator.strides=[8, 16, 32] but the '
        'CSPNeXtPAFPN outputs are at strides [4, 8, 16, 32]',
        'set model.backbone.out_indices=(1, 2, 3) and '
        'model.neck.in_channels=[249, 499, 998]'
    ], {
        'model.backbone.out_indices': (1, 2, 3),
        'model.neck.in_channels': [249, 499, 998]
    }),
    'rtmdet_base_channels':
    ('mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py', {}, [
        'model.neck.in_channels has 3 entries ([96, 192, 384]) but the '
        'SLaK backbone gives 4 maps',
        ': set model.backbone.out_indices=(1, 2, 3) and '
        'model.neck.in_channels=[249, 499, 998].'
    ], {
        'model.backbone.out_indices': (1, 2, 3),
        'model.neck.in_channels': [249, 499, 998]
    }),
    'yolox': ('mmdet::yolox/yolox_s_8xb8-300e_coco.py', {
        'model.neck.in_channels': [124, 249, 499, 998]
    }, [
        'model.bbox_head.strides=[8, 16, 32] but the YOLOXPAFPN '
        'outputs are at strides [4, 8, 16, 32]',
        'set model.backbone.out_indices=(1, 2, 3)'
    ], {
        'model.backbone.out_indices': (1, 2, 3),
        'model.neck.in_channels': [249, 499, 998]
    }),
    'retinanet_fpn': ('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', {
        'model.backbone.out_indices': (1, 2, 3),
        'model.neck.in_channels': [249, 499, 998]
    }, [
        'model.bbox_head.anchor_generator.strides=[8, 16, 32, 64, 128] '
        'but the FPN outputs are at strides [16, 32, 64, 128, 256]',
        'set model.neck.start_level=0',
        'or set model.backbone.out_indices=(0, 1, 2, 3) and '
        'model.neck.in_channels=[124, 249, 499, 998]'
    ], {
        'model.neck.in_channels': [124, 249, 499, 998]
    }),
    'dino_levels': ('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', {
        'model.backbone.out_indices': (1, 2, 3),
        'model.neck.in_channels': [249, 499, 998],
        'model.neck.num_outs': 3
    }, [
        'model.num_feature_levels=4, model.encoder.layer_cfg.'
        'self_attn_cfg.num_levels=4, model.decoder.layer_cfg.'
        'cross_attn_cfg.num_levels=4 but the ChannelMapper outputs are '
        '3 maps', 'set model.neck.num_outs=4'
    ], {
        'model.backbone.out_indices': (1, 2, 3),
        'model.neck.in_channels': [249, 499, 998]
    }),
    'mask2former_panoptic':
    ('mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py', {
        'model.backbone.out_indices': (1, 2, 3),
        'model.panoptic_head.in_channels': [249, 499, 998]
    }, [
        'model.panoptic_head.pixel_decoder.strides=[4, 8, 16, 32] but '
        'the SLaK outputs are at strides [8, 16, 32]',
        'set model.backbone.out_indices=(0, 1, 2, 3) and '
        'model.panoptic_head.in_channels=[124, 249, 499, 998]'
    ], {
        'model.panoptic_head.in_channels': [124, 249, 499, 998]
    }),
    'upernet_in_index':
    ('mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py', {
        'model.backbone.out_indices': (1, 2, 3),
        'model.decode_head.in_channels': [249, 499, 998]
    }, [
        'model.decode_head.in_index=[0, 1, 2, 3] but there are only 3 '
        'feature maps', 'pick indices in 0..2, or set '
        'model.backbone.out_indices=(0, 1, 2, 3) and '
        'model.decode_head.in_channels=[124, 249, 499, 998]',
        'model.auxiliary_head.in_channels=1024 for '
        'in_index=2', 'set model.auxiliary_head.in_channels=998'
    ], {
        'model.decode_head.in_channels': [124, 249, 499, 998],
        'model.auxiliary_head.in_channels': 499
    }),
    # an FCNHead without convs hands its input on: channels = in_channels
    # (CGNet's; was an AssertionError while building)
    'fcn_no_convs': ('mmseg::cgnet/cgnet_fcn_4xb4-60k_cityscapes-680x680.py', {
        'model.decode_head.in_channels': 499
    }, [
        'model.decode_head.channels=256 but an FCNHead without convs',
        'set model.decode_head.channels=499'
    ], {
        'model.decode_head.in_channels': 499,
        'model.decode_head.channels': 499
    }),
    # KNet's kernel_generate_head reads the maps inside the decode head
    # (was unchecked: a shape error in the first step)
    'knet_inner_head':
    ('mmseg::knet/knet-s3_r50-d8_fcn_8xb2-adamw-80k_ade20k-512x512.py', {
        'model.auxiliary_head.in_channels': 499
    }, [
        'model.decode_head.kernel_generate_head.in_channels=2048 for '
        'in_index=3', 'set model.decode_head.kernel_generate_head.'
        'in_channels=998'
    ], {
        'model.auxiliary_head.in_channels': 499,
        'model.decode_head.kernel_generate_head.in_channels': 998
    }),
    # mmpretrain classifiers: VGG classifies in its backbone (ClsHead has
    # no layer, no neck); ResNet's head width; MLP-Mixer pools tokens
    # (was: 'mat1 and mat2 shapes cannot be multiplied' in the first step,
    # or 998 logits for 1000 classes)
    'vgg_classifier': ('mmpretrain::vgg/vgg11_8xb32_in1k.py', {}, [
        'model.head is a ClsHead, which has no classifier layer',
        "set model.head=dict(_delete_=True, type='LinearClsHead', "
        'num_classes=1000, in_channels=998',
        "set model.neck=dict(_delete_=True, type='GlobalAveragePooling')"
    ], {
        'model.head':
        dict(
            _delete_=True,
            type='LinearClsHead',
            num_classes=1000,
            in_channels=998),
        'model.neck':
        dict(_delete_=True, type='GlobalAveragePooling')
    }),
    'mixer_token_pooling':
    ('mmpretrain::mlp_mixer/mlp-mixer-base-p16_64xb64_in1k.py', {}, [
        'model.neck.dim=1 pools token sequences', 'set model.neck.dim=2',
        'model.head.in_channels=768 but it reads the last SLaK output',
        'set model.head.in_channels=998'
    ], {
        'model.neck.dim': 2,
        'model.head.in_channels': 998
    }),
    # CornerNet's head reads HourglassNet's stride-4 maps, one width (was:
    # 'put a neck', no setting named)
    'cornernet_single_map':
    ('mmdet::cornernet/cornernet_hourglass104_8xb6-210e-mstest_coco.py', {
        'model.bbox_head.in_channels': 998
    }, [
        'model.bbox_head.in_channels=998 but the maps it reads differ in '
        'width', 'set model.backbone.out_indices=(0,) and '
        'model.bbox_head.in_channels=124 and '
        'model.bbox_head.num_feat_levels=1'
    ], {
        'model.backbone.out_indices': (0, ),
        'model.bbox_head.in_channels': 124,
        'model.bbox_head.num_feat_levels': 1
    }),
}


@pytest.mark.parametrize('case', list(STOCK))
def test_stock_configs_with_slak_wrong_refused_fixed_pass(case, tmp_path):
    """Was: a SLaK with four outputs in RTMDet's CSPNeXtPAFPN (or YOLOX's)
    trained with its head's strides 8-32 on maps at 4-16, without a
    word; the DETR levels, Mask2Former's pixel decoder strides and the
    class-default strides went unchecked."""
    base, wrong, expected, fixed = STOCK[case]
    top = tmp_path / 'slak_top.py'
    top.write_text(f'_base_ = [{base!r}]\n'
                   "model = dict(backbone=dict(_delete_=True, type='SLaK', "
                   "arch='tiny'))\n")
    with pytest.raises(ValueError) as err:
        check_backbone_neck(load_config(str(top), wrong))
    message = str(err.value)
    for text in expected:
        assert text in message, message
    check_backbone_neck(load_config(str(top), fixed))  # passes


def test_a_neck_chain_is_not_judged_as_one_neck(tmp_path):
    """mmpretrain's HRNet classifier pools through a list of necks
    (HRFuseScales, then GlobalAveragePooling): the classifier check leaves
    the chain alone (was: "'list' object has no attribute 'get'")."""
    top = tmp_path / 'slak_top.py'
    top.write_text("_base_ = ['mmpretrain::hrnet/hrnet-w18_4xb32_in1k.py']\n"
                   "model = dict(backbone=dict(_delete_=True, type='SLaK', "
                   "arch='tiny'))\n")
    cfg = load_config(str(top))
    assert [n['type'] for n in cfg.model.neck
            ] == ['HRFuseScales', 'GlobalAveragePooling']
    assert backbone_neck_problems(cfg) == []


def test_stdc_detail_head_is_no_class_count():
    """STDC's detail head tells boundary from not (num_classes=2) whatever
    the data: not compared with the datasets' classes (was: refused on
    every dataset but a binary one)."""
    model = dict(
        decode_head=dict(type='FCNHead', num_classes=19),
        auxiliary_head=[
            dict(type='FCNHead', num_classes=19),
            dict(type='mmseg.STDCHead', num_classes=2)
        ])
    assert list(head_num_classes(model)) == [
        ('model.decode_head.num_classes', 19),
        ('model.auxiliary_head.0.num_classes', 19)
    ]
