from .layer_decay_optimizer_constructor import (
    DetSLaKLearningRateDecayOptimizerConstructor,
    SLaKLearningRateDecayOptimizerConstructor)

__all__ = [
    'SLaKLearningRateDecayOptimizerConstructor',
    'DetSLaKLearningRateDecayOptimizerConstructor'
]
