"""The official SLaK ImageNet classifier from mmpretrain parts, and
slak_mm's runner hooks in mmpretrain's registry.

``ImageClassifier(backbone=SLaKClsBackbone, neck=GlobalAveragePooling,
head=SLaKClsHead)`` computes what the official model does: the last
stage's map, averaged over space, then LayerNorm (``norm``) and Linear
(``head``). Load an official file with
:func:`slak_mm.models.classifiers.load_official_classifier`.
"""
from typing import Tuple

import torch
import torch.nn as nn
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import HOOKS, MODELS, TRANSFORMS

from slak_mm.datasets.transforms import CheckedLoadImageFromFile
from slak_mm.engine import hooks
from ..backbones import SLaK

# the dense-prediction backbone, for mmpretrain configs as well
MODELS.register_module(module=SLaK)
# what the tools add to a config or the configs name, registered in mmseg's
# and mmdet's registries on import, for runs in the mmpretrain scope too:
# the runner hooks (load check, crash-safe checkpoints, sparsity) and the
# image loader that names a damaged file
for _name in hooks.__all__:
    HOOKS.register_module(module=getattr(hooks, _name))
TRANSFORMS.register_module(module=CheckedLoadImageFromFile)


@MODELS.register_module()
class SLaKClsBackbone(SLaK):
    """SLaK as the body of the official classifier: stage outputs without
    the dense-prediction output norms ``norm0..3``.

    The official model normalises after global pooling (its ``norm``,
    here in :class:`SLaKClsHead`), not per pixel before it, so the output
    norms would change the result. Registered in mmpretrain's ``MODELS``.

    Args:
        out_indices (Sequence[int]): Stages whose maps are returned.
            Default: (3, ), the last stage, as the classifier uses.
        **kwargs: Any other :class:`slak_mm.models.SLaK` argument (``arch``,
            ``kernel_size``, ``sparse``, ...).
    """

    def __init__(self, out_indices=(3, ), **kwargs):
        super().__init__(out_indices=out_indices, **kwargs)
        for i in self.out_indices:
            setattr(self, f'norm{i}', nn.Identity())


@MODELS.register_module()
class SLaKClsHead(LinearClsHead):
    """LayerNorm, then Linear, on pooled features: the official SLaK (and
    ConvNeXt) classifier, ``norm`` and ``head`` in the official files
    (here ``norm`` and ``fc``; :func:`classifier_filter_fn` maps the names).
    Registered in mmpretrain's ``MODELS``.

    Args:
        num_classes (int): Number of classes (1000 for ImageNet-1K).
        in_channels (int): Channels of the pooled features (SLaK-T/S 998,
            SLaK-B 1331).
        norm_eps (float): LayerNorm epsilon. Default: 1e-6 (official).
        **kwargs: Passed to mmpretrain's ``LinearClsHead`` (``loss``,
            ``topk``, ``init_cfg``, ...).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 norm_eps: float = 1e-6,
                 **kwargs):
        super().__init__(num_classes, in_channels, **kwargs)
        self.norm = nn.LayerNorm(in_channels, eps=norm_eps)

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """The normalised pooled features of the last stage.

        Args:
            feats (tuple[Tensor]): Neck outputs, the last (N, C) is used.

        Returns:
            Tensor: (N, C).
        """
        return self.norm(feats[-1])
