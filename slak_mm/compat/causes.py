"""Why a family fails the sweep: the causes found so far, by their message.

Each failing row is matched against :data:`CAUSES` (its message and the
file that raised it); the report groups the rows by cause and names the
upstream package and version where the cause lies. A failure no cause
matches is reported as unclassified, with its message: a new one (an
upgrade, a new family) shows up instead of hiding in a group.
:data:`FIXED` lists what was ours and is fixed (the report says so; the
tests named there keep it fixed).
"""
import re
from dataclasses import dataclass
from importlib import metadata
from typing import Optional

from .result import Result

__all__ = ['CAUSES', 'FAMILY', 'FIXED', 'Cause', 'classify', 'package_version']


@dataclass(frozen=True)
class Cause:
    """A reason families fail.

    Attributes:
        kind (str): ``'upstream'`` (a framework's bug or limit),
            ``'environment'`` (a package the frameworks do not install),
            ``'ours'`` (slak_mm's, not fixed yet) or ``'n/a'`` (the model
            is built around its own backbone: the row counts as not
            applicable).
        title (str): The group's name in the report.
        pattern (str): Regular expression searched in ``'message @ where'``.
        package (str): The module the cause lies in (its installed version
            is reported), :data:`FAMILY` for the family's framework; empty
            where no upstream package is at fault.
        explain (str): What happens and what a user does about it.
    """
    kind: str
    title: str
    pattern: str
    package: str
    explain: str


#: ``Cause.package`` for a cause in whichever framework the family is.
FAMILY = 'family'

#: The causes, first match wins.
CAUSES = (
    Cause(
        'environment', 'an optional package is not installed',
        r'is not installed|pip install|No module named', '',
        'the config uses a transform or metric whose package the frameworks '
        'do not depend on (albumentations, instaboostfast, scikit-learn, '
        'panopticapi: a git install): install it as the message says; '
        'nothing to do with the backbone'),
    Cause(
        'upstream', 'mmcv op without a CPU kernel',
        r'implementation for device cpu not found', 'mmcv',
        'the head or neck uses a CUDA-only mmcv op (CARAFE, ...): it runs on '
        'a GPU; the sweep runs on the CPU'),
    Cause(
        'upstream', 'DeformConv2dPack refuses maps smaller than its kernel',
        r'input image is smaller than kernel', 'mmcv',
        "mmcv's DeformConv2d pads a map smaller than its 3 x 3 kernel, "
        'DeformConv2dPack (a head\'s DCN) does not: on the 1 x 1 stride-128 '
        'level of a 128 px image it stops; at 384 px and more (COCO sizes) '
        'the levels are large enough'),
    Cause(
        'upstream', 'FCNMaskHead pastes no mask for boxes outside the image',
        r'upper bound and lower bound inconsistent with step sign', 'mmdet',
        'after one training step the model predicts boxes beyond the image '
        "edge; mmdet's _do_paste_mask then builds an empty coordinate range "
        '(torch.arange with inverted bounds): a trained model does not '
        'predict such boxes'),
    Cause(
        'upstream', "CrowdDet's assigner needs two boxes per image",
        r"shape '\[-1, 2\]' is invalid .*@ mmdet/models/task_modules/"
        r'assigners/multi_instance_assigner', 'mmdet',
        'MultiInstanceAssigner keeps the two best boxes per proposal '
        '(num_instance=2) and reshapes to pairs: an image with fewer than '
        'two ground-truth boxes (the synthetic images have 0-4 people; '
        'CrowdHuman has crowds) stops it'),
    Cause(
        'upstream', "CrowdDet's predictions carry float labels",
        r'list indices must be integers or slices, not numpy\.float32 @ '
        r'mmdet/evaluation/metrics/coco_metric', 'mmdet',
        'MultiInstanceBBoxHead returns its labels as float32, with which '
        'CocoMetric indexes its category ids (the sweep tests every '
        "detector with CocoMetric on synthetic COCO; CrowdDet's own configs "
        'evaluate with CrowdHumanMetric, which reads boxes and scores '
        'only): it trains with SLaK; its test needs CrowdHuman data'),
    Cause(
        'upstream', "C4 shared head: ResNet's input width is fixed",
        r'expected input\[\d+, \d+, \d+, \d+\] to have 1024 channels', 'mmdet',
        "Faster R-CNN C4's RoI head runs ResNet's stage 4 (ResLayer), whose "
        'input width (1024) follows from ResNet-50 and is no argument: no '
        'other backbone fits it; the FPN configs of the family take SLaK'),
)

CAUSES += (
    Cause(
        'upstream', 'the packaged config fails as shipped',
        r'Only one of `type` or `by_epoch` can exist|should be either all '
        r'None or not None', FAMILY,
        "with any backbone, mmengine's Runner refuses it: a train_cfg with "
        "by_epoch=True over a base's that names its loop type (SOLOv2-light, "
        "MaskFeat), a test_dataloader without test_cfg (ResNeSt's configs "
        'include no schedule base)'),
    Cause(
        'upstream', 'the packaged config is a distilled model mmpretrain '
        'does not train', r"doesn't support (to train the distilled|"
        r'training in distillation mode)', 'mmpretrain',
        'the head classifies with a distillation token (EfficientFormer, '
        "LeViT, TinyViT '-distill'): mmpretrain only runs it for inference, "
        'with any backbone'),
    Cause(
        'upstream', "the Runner hands a scoped base's _scope_ to collate_fn",
        r"unexpected keyword argument '_scope_'", 'mmengine',
        "a config inheriting 'mmpretrain::...' gets _scope_ in every dict "
        "of the base; Runner.build_dataloader passes collate_fn's dict on "
        'as keyword arguments (SimMIM\'s benchmark sets collate_fn)'),
    Cause(
        'ours', "the check does not model FastFCN's JPU neck yet",
        r'to have 2048 channels, but got 499', '',
        'JPU passes stages 1-2 on and adds its own 2048-wide fusion: '
        'out_indices=(1, 2, 3), neck in_channels=(249, 499, 998) and '
        'auxiliary_head.in_channels=499; the check does not offer it'),
    Cause(
        'upstream', 'LRASPPHead pools with a fixed 49 x 49 window',
        r'Output size is too small', 'mmseg',
        'LRASPPHead (MobileNetV3) average-pools with kernel 49 and stride '
        '(16, 20), made for 512 x 1024 crops: the 64 px images of the sweep '
        'give smaller maps; at Cityscapes sizes it runs'),
    Cause(
        'ours', 'a GroupNorm after the backbone does not divide SLaK widths',
        r'must be divisible by num_groups', '',
        "SLaK-T's widths (124, 249, 499, 998: x1.3) divide by no usual "
        'GroupNorm group count; the part that reads them (VPD\'s depth head, '
        'made for Stable Diffusion\'s 320-1280) needs other widths or '
        'groups; the check does not look at norm groups yet'),
    Cause(
        'ours', "the check does not model SSD's neck yet", r'ssd_neck.py:\d+',
        '',
        "SSDNeck passes its inputs on with VGG's widths (in_channels must be "
        'out_channels[:2]) and its extra layers need 300 px images: the fix '
        'is out_indices=(1, 2) with the neck\'s and head\'s channels, which '
        'the check does not offer'),
    Cause(
        'ours', "the check does not model YOLOv3's neck yet",
        r'yolo_neck.py:\d+', '',
        'YOLOV3Neck reads three maps deepest first (in_channels=[1024, 512, '
        '256] of Darknet): out_indices=(1, 2, 3) with in_channels=[998, 499, '
        '249]; the check does not model the reversed order'),
)

#: ... and where the model is built around its own backbone (n/a rows).
CAUSES += (
    Cause(
        'n/a', "TridentNet's detector is its backbone's branches",
        r"object has no attribute 'num_branch'", 'mmdet',
        'TridentFasterRCNN takes num_branch and test_branch_idx from its '
        'TridentResNet backbone (three branches sharing weights, one per '
        "scale): the detector is that backbone's design"),
    Cause(
        'n/a', "the head reads its backbone's own branches",
        r'too many values to unpack .*@ mmseg/models/decode_heads/'
        r'(pid|ddr)_head', 'mmseg',
        "PIDNet's head takes its backbone's P, I and D branches, DDRNet's "
        'its two resolution branches: no single-path backbone has them'),
    Cause(
        'n/a', "DetectoRS's RFP neck feeds its backbone back",
        r'@ mmdet/models/necks/rfp\.py', 'mmdet',
        'the recursive feature pyramid runs DetectoRS_ResNet a second time '
        'with the pyramid as feedback (its rfp_forward, the image as an '
        'extra input): the neck needs that backbone'),
    Cause(
        'n/a', "ICNet's neck fuses ICNet's resolution branches",
        r'Length of input channels\s+must be 3', 'mmseg',
        'ICNeck fuses the three image resolutions the ICNet backbone '
        'runs its own layers on: the backbone is the cascade'),
    Cause(
        'n/a', "UNet's head reads UNet's decoder",
        r'decode_head.in_index=4 but there are only 4 feature maps', 'mmseg',
        "the head reads the full-resolution map of UNet's decoder "
        '(in_index=4): the UNet backbone is encoder and decoder, SLaK an '
        'encoder'),
    Cause(
        'n/a', "BiSeNetV2's heads read its five branches",
        r'auxiliary_head.3.in_index=4 but there are only 4 feature maps',
        'mmseg', "the last auxiliary head reads BiSeNetV2's fifth output "
        '(its semantic branch stages); SLaK has four'),
)

#: Causes that were ours, fixed while the sweep was built: (what failed,
#: the fix, the test that keeps it fixed).
FIXED = (
    ("bases in folders whose name mmengine's SCOPE::path pattern rejects "
     "('mmdet::gn+ws/...', 'mmdet::legacy_1.x/...': \"_get_package_and_cfg_"
     'path is used for get external package")',
     'import slak_mm reads them from the package\'s configs folder',
     'tests/configs/test_integrations.py::test_bases_in_folders_mmengine_'
     'cannot_name'),
    ('a base\'s ConvNeXt layer-decay constructor with SLaK (mmdet/mmseg '
     'convnext: a bare NotImplementedError while the optimizer is built)',
     'the model check refuses it first and names optim_wrapper.constructor='
     "'SLaKLearningRateDecayOptimizerConstructor'",
     'tests/config/test_model_checks.py::test_convnext_layer_decay_'
     'constructor_refused_with_ours'),
    ("the num_classes check refused Panoptic FPN's 80-class RoI heads on "
     "COCO panoptic's 133 classes",
     'instance heads are compared with the thing classes too',
     'tests/config/test_model_checks.py::test_panoptic_data_counts_things_for_'
     'instance_heads'),
    ('testing a DDQ-DETR checkpoint: "36 unexpected" keys (the head\'s '
     'branches, attached to the decoder too while it trains)',
     'keys that hold the very tensor of a key the model has fit',
     'tests/checkpoint/test_safe_loading.py::test_alias_keys_of_a_trained_'
     'model_fit'),
    ("mmcv's MMSyncBN (Simple Copy-Paste, strong baselines) on one process: "
     '"Default process group has not been initialized"',
     'replace_sync_bn turns it into BN as it does SyncBN',
     'tests/configs/test_det_configs.py::test_mmcv_sync_bn_becomes_bn_on_one_'
     'process'),
    ('a head that reads the backbone with one width (CornerNet, '
     "CentripetalNet): refused with 'put a neck' and no setting",
     'the fix is the SLaK output at its stride (4), its width and '
     'num_feat_levels=1',
     'tests/config/test_model_checks.py::test_stock_configs_with_slak_wrong_'
     'refused_fixed_pass'),
    ("KNet's kernel_generate_head and an FCNHead without convs (CGNet) were "
     'not checked: a shape error, an AssertionError while building',
     'both are checked, with the fix (their in_channels; channels = '
     'in_channels)',
     'tests/config/test_model_checks.py::test_stock_configs_with_'
     'slak_wrong_refused_fixed_pass'),
    ('mmpretrain classifiers: no pooling neck (ViT, VGG heads), token '
     "pooling (GlobalAveragePooling(dim=1)), VGG's and Inception-v3's "
     'classifier in the backbone, the head\'s width: "mat1 and mat2 shapes '
     'cannot be multiplied", or 998 logits for 1000 classes',
     'the check names the pooling neck, dim=2, a LinearClsHead and the '
     'width',
     'tests/config/test_model_checks.py::test_stock_configs_with_slak_'
     'wrong_refused_fixed_pass'),
    ("mmpretrain's layer-decay fine-tuning (BEiT, MAE, EVA, ... benchmarks): "
     '"The backbone SLaK doesn\'t support `get_layer_depth`"',
     "SLaK.get_layer_depth gives mmpretrain's ConvNeXt rule",
     'tests/engine/test_layer_decay_optimizer_constructor.py::test_mmpretrain_'
     'layer_decay_reads_slak_layer_depths'),
    ("STDC's detail head (num_classes=2: boundary or not) was compared "
     "with the datasets' classes: every STDC config refused",
     'heads with a class count of their own task are not compared',
     'tests/config/test_model_checks.py::test_stdc_detail_head_is_no_class_'
     'count'),
    ("mmpretrain's HRNet classifier pools through a list of necks: "
     "\"'list' object has no attribute 'get'\" in the classifier check",
     'a chain of necks is not judged as one neck',
     'tests/config/test_model_checks.py::test_a_neck_chain_is_not_judged_as_'
     'one_neck'),
    ("synthetic ImageNet read by mmpretrain's ImageNet dataset (the packaged "
     'configs\' type): "The number of subfolders (6) doesn\'t match ... '
     '(1000)"', 'the generator writes meta/{train,val}.txt as ImageNet has',
     'tests/datasets/test_synthetic.py::test_imagenet_read_by_mmpretrain'),
)


def classify(result: Result) -> Optional[Cause]:
    """The cause of a failed row.

    Args:
        result (Result): A row with ``outcome == 'fail'``.

    Returns:
        Cause | None: The first cause whose pattern matches; None if none
        does.
    """
    text = f'{result.message} @ {result.where}'
    for cause in CAUSES:
        if re.search(cause.pattern, text):
            return cause
    return None


def package_version(module: str) -> str:
    """The installed distribution and version of a module
    (``'onedl-mmcv 2.3.1'``).

    Args:
        module (str): A top-level module name.

    Returns:
        str: Distribution and version; the module name if not found.
    """
    for dist in metadata.packages_distributions().get(module, []):
        try:
            return f'{dist} {metadata.version(dist)}'
        except metadata.PackageNotFoundError:
            continue
    return module
