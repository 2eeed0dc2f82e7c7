"""The model families the installed frameworks package, and one config of
each to try SLaK in.

A family is a folder of ``<package>/.mim/configs`` (``_base_`` aside), as
``mim`` and the frameworks' model zoos name them. Its representative is
the first config by path that loads and that the sweep can run as it is
written: one whose datasets the synthetic generator writes (COCO
instances / stuff / panoptic, ADE20K, VOC, ImageNet folders) and whose
model has a ``backbone``; else the first that has a backbone (its datasets
are then replaced by synthetic ones of the same task); else the first that
loads; the re-parameterised inference forms (``deploy/``) last.
mmpretrain's families count when one of their configs is an image
classifier (``ImageClassifier``; the self-supervised and multimodal
folders without one are listed apart).
"""
import glob
import os
import os.path as osp
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config

from slak_mm.config import load_config, packaged_config_folder
from slak_mm.datasets.checks import dataset_paths, leaf_dataset_cfgs
from slak_mm.datasets.synthetic import synthetic_kind
from slak_mm.registry import registered_class, type_name

__all__ = [
    'PACKAGES', 'Family', 'packaged_families', 'representative',
    'synthetic_kinds'
]

#: The frameworks swept, in table order.
PACKAGES = ('mmdet', 'mmseg', 'mmpretrain')


@dataclass
class Family:
    """One model folder of a framework's packaged configs.

    Attributes:
        package (str): ``'mmdet'``, ``'mmseg'`` or ``'mmpretrain'``.
        name (str): The folder (``'retinanet'``).
        configs (list[str]): Its config files, relative to the configs
            folder (``'retinanet/retinanet_r50_fpn_1x_coco.py'``), sorted.
        config (str, optional): The representative, once picked.
        note (str): Why none was picked (no config loads, no classifier).
    """
    package: str
    name: str
    configs: List[str] = field(default_factory=list)
    config: Optional[str] = None
    note: str = ''

    @property
    def label(self) -> str:
        """``package/name``."""
        return f'{self.package}/{self.name}'


def packaged_families(packages: Sequence[str] = PACKAGES) -> List[Family]:
    """Every model folder of the packages' configs, in package then name
    order.

    Args:
        packages (Sequence[str]): Which frameworks.

    Returns:
        list[Family]: The families (representative not picked yet).
    """
    families = []
    for package in packages:
        root = packaged_config_folder(package)
        if root is None:
            continue
        for name in sorted(os.listdir(root)):
            folder = osp.join(root, name)
            if name.startswith(('_', '.')) or not osp.isdir(folder):
                continue
            configs = sorted(
                osp.relpath(path, root) for path in glob.glob(
                    osp.join(folder, '**', '*.py'), recursive=True))
            if configs:
                families.append(Family(package, name, configs))
    return families


def _leaves(cfg: Config) -> Iterator[dict]:
    for split in ('train', 'test'):
        loader = cfg.get(f'{split}_dataloader') or {}
        if isinstance(loader, dict):
            yield from leaf_dataset_cfgs(loader.get('dataset'))


def synthetic_kinds(cfg: Config) -> Optional[List[str]]:
    """The synthetic generators that write the train and test data of
    ``cfg`` as it reads them (``['coco']``); None where one of its
    datasets is none the generator writes.

    Args:
        cfg (Config): A packaged config.

    Returns:
        list[str] | None: Generator names (``--datasets`` of
        ``tools/generate_synthetic_data.py``).
    """
    kinds = []
    leaves = list(_leaves(cfg))
    for ds in leaves:
        kind = synthetic_kind(type_name(ds), dataset_paths(ds))
        # proposals of an RPN run are no generator's (the sweep writes
        # some); COCO panoptic is read with panopticapi, a git install
        if kind is None or ds.get('proposal_file') or (
                type_name(ds) == 'CocoPanopticDataset'
                and find_spec('panopticapi') is None):
            return None
        kinds.append(kind)
    return sorted(set(kinds)) if leaves else None


def _rank(package: str, rel: str, cfg: Config) -> Optional[int]:
    """0: runs as written; 1: has a backbone (data replaced); 2: the rest
    (3 for the re-parameterised inference forms in ``deploy/``); None: not
    swept (an mmpretrain config that is no classifier)."""
    model = cfg.get('model')
    if '/deploy/' in f'/{rel}':
        return 3
    if not isinstance(model, dict):
        return None if package == 'mmpretrain' else 2
    if cfg.get('default_scope', package) != package:
        return 2  # RTMDet's ImageNet pre-training configs in mmdet
    if package == 'mmpretrain':
        from mmengine.registry import MODELS
        cls = registered_class(MODELS, model.get('type'), 'mmpretrain')
        if cls is None or cls.__name__ != 'ImageClassifier':
            return None
    if not isinstance(model.get('backbone'), dict):
        return 2
    return 0 if synthetic_kinds(cfg) else 1


def representative(family: Family) -> Tuple[Optional[str], str]:
    """Pick the family's config to try (the rule of the module docstring).

    Args:
        family (Family): The family; its ``config`` / ``note`` are set.

    Returns:
        tuple[str | None, str]: The config (relative path) and the note.
    """
    best: Optional[Tuple[int, str]] = None
    errors = []
    for rel in family.configs:
        try:
            cfg = load_config(
                osp.join(packaged_config_folder(family.package), rel))
        except Exception as err:  # a config of the package that is broken
            errors.append(f'{rel}: {type(err).__name__}: {err}')
            continue
        rank = _rank(family.package, rel, cfg)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, rel)
            if rank == 0:
                break
    if best is not None:
        family.config, family.note = best[1], ''
    elif errors and len(errors) == len(family.configs):
        family.note = f'no config loads ({errors[0].splitlines()[0]})'
    else:
        family.note = 'no image classification config'
    return family.config, family.note
