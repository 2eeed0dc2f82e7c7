"""The public actions behind the tools: train, test, infer, evaluate.

Each takes a config loaded with :func:`slak_mm.config.load_config`.
Importing this package changes nothing global (the config scopes are
registered when a config is loaded).
"""
from slak_mm.models import build_model
from .classification import evaluate_classifier
from .inference import build_inferencer, config_dataset_meta, infer_images
from .run import test, train

__all__ = [
    'build_inferencer', 'build_model', 'config_dataset_meta',
    'evaluate_classifier', 'infer_images', 'test', 'train'
]
