"""Inference forms of a trained model.

- :mod:`.reparam`: re-parameterisation (``tools/deploy.py``): BatchNorms
  folded, large-kernel branches merged, saved as a deploy checkpoint;
- :mod:`.onnx_export`: ONNX export of the deploy form and its check with
  onnxruntime (``tools/export_onnx.py``).
"""
from .onnx_export import (DETECTOR_NOTE, MIN_SIDE, ExportAdaptiveAvgPool2d,
                          FeatureExtractor, SegmentorLogits, export_friendly,
                          export_module, export_onnx, plain_torch_convs,
                          verify_onnx)
from .reparam import DEPLOY_CFG_OPTION, deploy_checkpoint, load_deploy_model

__all__ = [
    'DEPLOY_CFG_OPTION', 'DETECTOR_NOTE', 'MIN_SIDE',
    'ExportAdaptiveAvgPool2d', 'FeatureExtractor', 'SegmentorLogits',
    'deploy_checkpoint', 'export_friendly', 'export_module', 'export_onnx',
    'load_deploy_model', 'plain_torch_convs', 'verify_onnx'
]
