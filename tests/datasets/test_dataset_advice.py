"""The missing-dataset error advises the synthetic generator only where it
writes every path the config reads, and following the advice makes the
check pass; otherwise it names the layout alone (was: the generator was
advised for COCO stuff / panoptic maps, Cityscapes, LVIS, ... that it
cannot make)."""
import re

import pytest

from slak_mm.config import check_datasets, load_config
from slak_mm.datasets import generate_all
from tests.common import DEMO_CONFIG

CASES = {
    'ade20k': (DEMO_CONFIG, 'ade20k'),
    'htc_stuff_maps': ('mmdet::htc/htc_r50_fpn_1x_coco.py', 'coco'),
    'coco_panoptic':
    ('mmdet::panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py', 'coco'),
    'imagenet_folders':
    ('mmpretrain::_base_/datasets/imagenet_bs32.py', 'imagenet'),
    'cityscapes': ('mmseg::_base_/datasets/cityscapes.py', None),
    'lvis': ('mmdet::_base_/datasets/lvis_v1_instance.py', None),
    'coco_2014': ('mmdet::_base_/datasets/coco_detection.py', None),
}


@pytest.mark.parametrize('case', list(CASES))
def test_generator_advised_only_where_it_is_right(tmp_path, case):
    config, kind = CASES[case]
    # mmpretrain's base sets data_root in each dataset, not as a variable
    keys = [
        f'{split}_dataloader.dataset.data_root' for split in ('train', 'val')
    ] if case == 'imagenet_folders' else ['data_root']
    options = {key: str(tmp_path / 'missing') + '/' for key in keys}
    if case == 'coco_2014':  # a COCO file the generator does not write
        options['train_dataloader.dataset.ann_file'] = (
            'annotations/instances_train2014.json')
    with pytest.raises(FileNotFoundError) as err:
        check_datasets(load_config(config, options), ('train', ))
    message = str(err.value)
    assert 'path not found' in message and 'Expected layout' in message
    if kind is None:
        assert 'generate_synthetic_data' not in message, message
        return
    advice = re.search(
        r'generate_synthetic_data.py DIR --datasets (\w+) and set '
        r'data_root=DIR/(\w+)', message)
    assert advice and advice.group(1) == kind, message
    # the advice followed: the check passes on the generated folder
    paths = generate_all(
        str(tmp_path / 'DIR'), [kind], num_train=1, num_val=1, img_size=64)
    assert paths[kind].endswith(advice.group(2))
    options.update({key: paths[kind] + '/' for key in keys})
    check_datasets(load_config(config, options), ('train', 'val'))
