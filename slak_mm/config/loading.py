"""Reading a config: ``--cfg-options`` with top-level variables re-bound.

What the mm tools do with ``--cfg-options``, plus what they lack: a
top-level variable (``checkpoint``, ``data_root``) overridden there is
re-bound everywhere the config used its value, so ``--cfg-options
checkpoint=PATH`` reaches ``model.backbone.init_cfg``. The config scopes
(``_base_ = 'mmseg::...'`` on the onedl forks, ``slak_mm::`` bases) are
registered first (:func:`~slak_mm.config.register_config_scopes`).
"""
import os.path as osp
from typing import Any, Optional

from mmengine.config import Config

from .scopes import register_config_scopes

__all__ = ['load_config']


def _replace_values(node: Any, old: Any, new: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            node[key] = _replace_values(value, old, new)
        return node
    if isinstance(node, (list, tuple)):
        return type(node)(_replace_values(v, old, new) for v in node)
    if isinstance(node, str):
        if node == old:
            return new
        if node.startswith(old.rstrip('/') + '/'):  # e.g. data_root + '/ann'
            return new.rstrip('/') + node[len(old.rstrip('/')):]
    return node


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config and apply ``--cfg-options``.

    A top-level string variable named in ``cfg_options`` (for example
    ``checkpoint`` or ``data_root``) is replaced everywhere its old value was
    used, also as the leading path of longer strings
    (``data_root + '/annotations/...'``), not only at the top level.
    ``--cfg-options`` reads ``data_root=2016`` as the number 2016; a number
    given for a ``data_root`` key (also a nested one) is taken as the path
    it spells (``'2016'``).

    Args:
        path (str): Config file, or a packaged one as a ``_base_`` names it
            (``'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'``).
        cfg_options (dict, optional): Parsed ``--cfg-options``.

    Returns:
        Config: The merged config.
    """
    scoped = '::' in path and not osp.exists(path)
    if not scoped and not osp.isfile(path):
        raise FileNotFoundError(f'Config file not found: {path!r}')
    register_config_scopes()  # before the bases are read; idempotent
    if scoped:  # mmengine resolves a scoped name as a base, not as a file
        cfg = Config.fromstring(f'_base_ = [{path!r}]', '.py')
    else:
        cfg = Config.fromfile(path)
    cfg_options = dict(cfg_options or {})
    for key in list(cfg_options):
        old = cfg.get(key) if '.' not in key else None
        value = cfg_options[key]
        if key.split('.')[-1] == 'data_root' and isinstance(
                value, (int, float)) and not isinstance(value, bool):
            cfg_options[key] = str(value)  # a folder named 2016
        if isinstance(old, str) and isinstance(cfg_options[key], str):
            new = cfg_options.pop(key)
            for top_key in list(cfg.keys()):
                cfg[top_key] = _replace_values(cfg[top_key], old, new)
            cfg[key] = new
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg
