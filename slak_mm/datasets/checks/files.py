"""Each leaf dataset's annotation files, checked by the dataset's kind."""
from typing import Any, Sequence

from slak_mm.registry import is_subclass_named
from .coco import check_coco
from .configs import dataset_class, dataset_classes, leaf_dataset_cfgs
from .seg_maps import check_seg_files
from .voc import check_xml

__all__ = ['check_dataset_files']


def check_dataset_files(
    cfg: Any, splits: Sequence[str] = ('train', 'val', 'test')) -> None:
    """Check every annotation file of the config's datasets before a run.

    Reads annotation files and headers, never image pixels: COCO JSON
    (:mod:`.coco`), VOC XML (:mod:`.voc`), segmentation label maps
    (:mod:`.seg_maps`). Detection datasets log one summary line each.

    Args:
        cfg (Config): The config (``{split}_dataloader`` entries).
        splits (Sequence[str]): Which dataloaders to check.

    Raises:
        DatasetError: One line naming the file, the problem and the fix.
    """
    scope = cfg.get('default_scope')
    seen = []  # test_dataloader = val_dataloader: one check, one summary
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for ds in leaf_dataset_cfgs(loader.get('dataset')):
            key = {k: v for k, v in ds.items() if k != 'pipeline'}
            if key in seen:
                continue
            seen.append(key)
            cls = dataset_class(ds.get('type'), scope)
            prefix = ds.get('data_prefix') or {}
            if is_subclass_named(cls, 'mmdet', 'CocoPanopticDataset'):
                continue  # segments_info, not instances: mmdet reads them
            if is_subclass_named(cls, 'mmdet', 'CocoDataset'):
                check_coco(split, ds, dataset_classes(ds, scope), scope)
            elif is_subclass_named(cls, 'mmdet', 'XMLDataset'):
                check_xml(split, ds, cls, dataset_classes(ds, scope))
            elif 'seg_map_path' in prefix and prefix['seg_map_path']:
                check_seg_files(split, ds, cls)
