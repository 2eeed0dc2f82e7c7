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

__all__ = ['CAUSES', 'FIXED', 'Cause', 'classify', 'package_version']


@dataclass(frozen=True)
class Cause:
    """A reason families fail.

    Attributes:
        kind (str): ``'upstream'`` (a framework's bug or limit),
            ``'environment'`` (a package the frameworks do not install) or
            ``'n/a'`` (the model is built around its own backbone: the
            row counts as not applicable).
        title (str): The group's name in the report.
        pattern (str): Regular expression searched in ``'message @ where'``.
        package (str): The module the cause lies in (its installed version
            is reported); empty for the environment.
        explain (str): What happens and what a user does about it.
    """
    kind: str
    title: str
    pattern: str
    package: str
    explain: str


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
        'upstream', "mmcv op without a CPU kernel",
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
        'upstream', "FCNMaskHead pastes no mask for boxes outside the image",
        r'upper bound and lower bound inconsistent with step sign', 'mmdet',
        'after one training step the model predicts boxes beyond the image '
        "edge; mmdet's _do_paste_mask then builds an empty coordinate range "
        '(torch.arange with inverted bounds): a trained model does not '
        'predict such boxes'),
    Cause(
        'upstream', "C4 shared head: ResNet's input width is fixed",
        r'expected input\[\d+, \d+, \d+, \d+\] to have 1024 channels', 'mmdet',
        "Faster R-CNN C4's RoI head runs ResNet's stage 4 (ResLayer), whose "
        'input width (1024) follows from ResNet-50 and is no argument: no '
        'other backbone fits it; the FPN configs of the family take SLaK'),
)

#: ... and where the model is built around its own backbone (n/a rows).
CAUSES += (Cause(
    'n/a', "TridentNet's detector is its backbone's branches",
    r"object has no attribute 'num_branch'", 'mmdet',
    "TridentFasterRCNN takes num_branch and test_branch_idx from its "
    "TridentResNet backbone (three branches sharing weights, one per "
    "scale): the detector is that backbone's design"), )

#: Causes that were ours, fixed while the sweep was built: (what failed,
#: the fix, the test that keeps it fixed).
FIXED = (
    ("bases in folders whose name mmengine's SCOPE::path pattern rejects "
     "('mmdet::gn+ws/...', 'mmdet::legacy_1.x/...': \"_get_package_and_cfg_"
     'path is used for get external package")',
     'import slak_mm reads them from the package\'s configs folder',
     'tests/test_integrations.py::test_bases_in_folders_mmengine_cannot_name'),
    ('a base\'s ConvNeXt layer-decay constructor with SLaK (mmdet/mmseg '
     'convnext: a bare NotImplementedError while the optimizer is built)',
     "the model check refuses it first and names optim_wrapper.constructor="
     "'SLaKLearningRateDecayOptimizerConstructor'",
     'tests/test_model_checks.py::test_convnext_layer_decay_constructor_'
     'refused_with_ours'),
    ("the num_classes check refused Panoptic FPN's 80-class RoI heads on "
     "COCO panoptic's 133 classes",
     'instance heads are compared with the thing classes too',
     'tests/test_model_checks.py::test_panoptic_data_counts_things_for_'
     'instance_heads'),
    ('testing a DDQ-DETR checkpoint: "36 unexpected" keys (the head\'s '
     'branches, attached to the decoder too while it trains)',
     'keys that hold the very tensor of a key the model has fit',
     'tests/test_safe_loading.py::test_alias_keys_of_a_trained_model_fit'),
    ("synthetic ImageNet read by mmpretrain's ImageNet dataset (the packaged "
     'configs\' type): "The number of subfolders (6) doesn\'t match ... '
     '(1000)"', 'the generator writes meta/{train,val}.txt as ImageNet has',
     'tests/test_synthetic_datasets.py::test_imagenet_read_by_mmpretrain'),
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
