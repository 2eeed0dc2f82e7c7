"""Where putting a CNN backbone into a packaged model makes no sense.

Read from the model's classes and config, not from a list of families:
trackers and video models reuse a detector or segmenter whose own family
is swept; text-grounding detectors need a language model from the Hugging
Face hub; a few heads and necks read a ViT's tokens (a class token, one
single-scale token map), which a convolutional backbone does not give
(:data:`TOKEN_READERS`); a classifier without a head classifies nothing; a
packaged config without training data trains nothing.
"""
from typing import Optional

from mmengine.config import Config
from mmengine.registry import MODELS

from slak_mm.registry import is_subclass_named, registered_class

__all__ = ['TOKEN_READERS', 'not_applicable']

#: Necks and heads built on a plain ViT's outputs (or another backbone's
#: own branches), and why SLaK cannot feed them.
TOKEN_READERS = {
    'MultiLevelNeck':
    "rescales a plain ViT's single-resolution token maps "
    'into a pyramid (scales 4, 2, 1, 0.5); SLaK gives a pyramid already '
    '(strides 4-32), which it would turn into strides 1-64',
    'Feature2Pyramid':
    "rescales a plain ViT's single-resolution token maps "
    'into a pyramid (rescales 4, 2, 1, 0.5); SLaK gives a pyramid already',
    'MLANeck':
    'sums four layers of a plain ViT, all at one resolution '
    '(SETR-MLA); the SLaK maps differ in resolution',
    'DPTHead':
    "reads a ViT's (patch tokens, class token) pairs",
    'DeiTClsHead':
    "reads DeiT's class and distillation tokens",
    'ConformerHead':
    "reads Conformer's CNN and transformer branches",
}


def _class(node, scope: Optional[str]) -> Optional[type]:
    if not isinstance(node, dict):
        return None
    return registered_class(MODELS, node.get('type'), scope)


def not_applicable(cfg: Config) -> Optional[str]:
    """Why swapping the backbone of ``cfg``'s model makes no sense, if so.

    Args:
        cfg (Config): A packaged config.

    Returns:
        str | None: The reason, one line; None where SLaK can go in.
    """
    model = cfg.get('model')
    if not isinstance(model, dict):
        return 'the config builds no model (a dataset or runtime base)'
    scope = cfg.get('default_scope')
    cls = _class(model, scope)
    name = getattr(cls, '__name__', model.get('type'))
    if is_subclass_named(cls, 'mmdet', 'BaseMOTModel'):
        return (f'{name} tracks objects in videos with a detector or '
                f'segmenter whose own family is swept (MOT / YouTube-VIS '
                f'video data)')
    if is_subclass_named(cls, 'mmdet', 'BaseReID'):
        return (f'{name} is the re-identification embedder of the trackers '
                f'(crops of people from MOT videos), no detector')
    if 'language_model' in model:
        return (f'{name} grounds text: its language model '
                f'({model["language_model"].get("name", "BERT")}) comes '
                f'from the Hugging Face hub; the image backbone is one part')
    if not isinstance(model.get('backbone'), dict):
        return f'{name} has no model.backbone to replace'
    for key in ('neck', 'decode_head', 'head'):
        for part in (model.get(key) if isinstance(model.get(key), list) else
                     [model.get(key)]):
            kind = getattr(_class(part, scope), '__name__', None)
            if kind in TOKEN_READERS:
                return f'the {kind} ({key}) {TOKEN_READERS[kind]}'
    if is_subclass_named(cls, 'mmpretrain', 'ImageClassifier') and \
            not isinstance(model.get('head'), dict):
        return ('a headless feature extractor (the backbone alone, for '
                'features or as a part of another model): nothing to '
                'classify')
    if not cfg.get('train_dataloader'):
        return (f'the packaged {name} config only tests (no '
                f'train_dataloader): nothing to train')
    return None
