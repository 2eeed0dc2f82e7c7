"""Reading a config's dataset parts: the leaf datasets inside wrappers,
the transforms of a pipeline, the classes a dataset yields and the paths
it reads (mmengine's rules, without building anything)."""
import os.path as osp
from typing import Any, Iterator, List, Optional

from slak_mm.registry import registered_class

__all__ = [
    'dataset_class', 'dataset_classes', 'dataset_paths', 'join_root',
    'leaf_dataset_cfgs', 'pipeline_transforms'
]


def leaf_dataset_cfgs(node: Any) -> Iterator[dict]:
    """Leaf dataset configs inside wrappers (``ConcatDataset``'s
    ``datasets``, ``RepeatDataset``'s ``dataset``).

    Args:
        node (dict): A dataloader's ``dataset`` config.

    Yields:
        dict: Each dataset config that wraps no other.
    """
    if isinstance(node, dict):
        if 'datasets' in node:
            for child in node['datasets']:
                yield from leaf_dataset_cfgs(child)
        elif 'dataset' in node:
            yield from leaf_dataset_cfgs(node['dataset'])
        else:
            yield node


def pipeline_transforms(pipeline: Any) -> Iterator[dict]:
    """Every transform config of a pipeline, also those nested in a
    wrapper's ``transforms`` (``TestTimeAug``'s list of lists,
    ``RandomChoice``, ``RandomApply``, ``KeyMapper``).

    Args:
        pipeline (list): A dataset's ``pipeline`` config.

    Yields:
        dict: Each transform config, wrappers before what they wrap.
    """
    for item in pipeline or ():
        if isinstance(item, (list, tuple)):
            yield from pipeline_transforms(item)
        elif isinstance(item, dict):
            yield item
            yield from pipeline_transforms(item.get('transforms'))


def dataset_class(ds_type: Any, scope: Optional[str]) -> Optional[type]:
    """The class a dataset config's ``type`` builds.

    Args:
        ds_type (str | type): The ``type``.
        scope (str, optional): The registry scope (``mmseg``, ``mmdet``).

    Returns:
        type | None: The class; None if not found.
    """
    from mmengine.registry import DATASETS
    return registered_class(DATASETS, ds_type, scope)


def dataset_classes(ds: dict,
                    scope: Optional[str],
                    key: str = 'classes') -> Optional[tuple]:
    """The classes a dataset config yields: its ``metainfo['classes']``,
    else its class's ``METAINFO`` (what mmengine's ``BaseDataset`` merges).

    Args:
        ds (dict): A leaf dataset config.
        scope (str, optional): The registry scope (``mmseg``, ``mmdet``).
        key (str): The ``metainfo`` entry (``'thing_classes'`` of panoptic
            datasets).

    Returns:
        tuple | None: The class names; None where unknown (a class file, a
        dataset that reads them from its annotations).
    """
    metainfo = ds.get('metainfo')
    if isinstance(metainfo, dict) and key in metainfo:
        classes = metainfo[key]
    else:
        cls = dataset_class(ds.get('type'), scope)
        classes = (getattr(cls, 'METAINFO', None) or {}).get(key)
    return tuple(classes) if isinstance(classes, (list, tuple)) and \
        classes else None


def dataset_paths(ds: dict) -> List[str]:
    """The ``ann_file`` and ``data_prefix`` paths a dataset config reads,
    relative to its ``data_root``.

    Args:
        ds (dict): A leaf dataset config.

    Returns:
        list[str]: The paths.
    """
    paths = [ds['ann_file']] if isinstance(ds.get('ann_file'), str) else []
    prefix = ds.get('data_prefix') or {}
    if isinstance(prefix, str):
        prefix = dict(img_path=prefix)
    paths += [p for p in prefix.values() if isinstance(p, str)]
    return paths


def join_root(root: str, path: Optional[str]) -> Optional[str]:
    """mmengine's prefix rule: a relative path is under ``data_root``.

    Args:
        root (str): The dataset's ``data_root`` (may be empty).
        path (str, optional): A path of the dataset config.

    Returns:
        str | None: The path as the dataset opens it; None for None.
    """
    if path is None:
        return None
    return path if not root or osp.isabs(path) else osp.join(root, path)
