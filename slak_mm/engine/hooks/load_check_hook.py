"""Refuse a ``load_from`` / test / resume checkpoint that does not fit."""
import logging
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop

from slak_mm.checkpoint import CheckpointMismatchError, fit_checkpoint
from slak_mm.registry import register_hook

#: What ``Runner.resume`` reads from a checkpoint besides the weights.
RESUME_ENTRIES = ('meta', 'message_hub', 'optimizer')


@register_hook
class CheckpointLoadCheckHook(Hook):
    """Check every checkpoint the runner loads before it reaches the model.

    Runs in mmengine's ``after_load_checkpoint`` stage, which the runner
    calls between reading a ``load_from`` / test / resume file and loading
    it (so ``tools/test.py``, ``load_from=`` and ``--resume`` are covered):

    - the weights must fit the model (see
      :func:`slak_mm.checkpoint.fit_checkpoint`: missing, unexpected or
      reshaped keys are an error naming them, unless ``allow_partial``);
      masks a sparse model has and the file lacks come from its zeros;
    - a resumed file must be a training checkpoint (``meta`` with epoch and
      iteration, ``message_hub``, ``optimizer``), else the message says to
      use ``load_from`` instead of a raw ``KeyError: 'meta'``; the values
      that drive the run (``meta.epoch``, ``meta.iter``: counts >= 0;
      ``meta.seed``: a seed numpy takes) are checked, since mmengine takes
      them as they are (a negative iteration trains on silently); a
      checkpoint at or past the end of training is said once.

    The configs here set it as ``default_hooks.load_check``; the tools add
    it to configs that lack it.

    Args:
        allow_partial (bool): Load the keys that fit and log a WARNING for
            the rest (e.g. fine-tuning a detector with another number of
            classes). Default: False.
    """

    priority = 'VERY_HIGH'

    def __init__(self, allow_partial: bool = False) -> None:
        self.allow_partial = allow_partial

    @staticmethod
    def _source(runner) -> str:
        return str(getattr(runner, '_load_from', None) or 'the checkpoint')

    def after_load_checkpoint(self, runner, checkpoint: Optional[dict]):
        source = self._source(runner)
        if not isinstance(checkpoint, dict):
            raise CheckpointMismatchError(
                f'{source!r} holds a {type(checkpoint).__name__}, not a '
                f'checkpoint dict.')
        if getattr(runner, '_resume', False):
            self._check_resumable(checkpoint, source)
            self._check_run_state(checkpoint['meta'], source, runner)
        model = runner.model
        # as mmengine's load_state_dict: DDP and TTA wrappers load their
        # inner model
        if is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module
        fit_checkpoint(model, checkpoint, source, self.allow_partial)

    @staticmethod
    def _check_resumable(checkpoint: dict, source: str) -> None:
        lacking = [k for k in RESUME_ENTRIES if k not in checkpoint]
        meta = checkpoint.get('meta')
        if isinstance(meta, dict):
            lacking += [
                f'meta.{k}' for k in ('epoch', 'iter') if k not in meta
            ]
        elif 'meta' in checkpoint:
            lacking.append('meta as a dict')
        if lacking:
            raise CheckpointMismatchError(
                f'Cannot resume from {source!r}: it lacks {lacking} (it is a '
                f'weights-only, converted or official file, not one written '
                f'by training). To start a new training from its weights use '
                f'load_from={source} without --resume (a backbone file goes '
                f'to model.backbone.init_cfg).')

    @staticmethod
    def _check_run_state(meta: dict, source: str, runner) -> None:
        for key in ('epoch', 'iter'):
            value = meta[key]
            if not isinstance(value, int) or isinstance(value, bool) \
                    or value < 0:
                raise CheckpointMismatchError(
                    f'Cannot resume from {source!r}: its meta.{key} is '
                    f'{value!r}, not a count >= 0 (a damaged or edited '
                    f'file). Resume from another checkpoint.')
        seed = meta.get('seed')
        if seed is not None and not (isinstance(seed, int) and not isinstance(
                seed, bool) and 0 <= seed < 2**32):
            raise CheckpointMismatchError(
                f'Cannot resume from {source!r}: its meta.seed is {seed!r}, '
                f'not a seed in [0, 2**32) (a damaged or edited file). '
                f'Resume from another checkpoint.')
        loop = runner.train_loop
        done, total, unit = ((meta['epoch'], loop.max_epochs, 'epoch')
                             if isinstance(loop, EpochBasedTrainLoop) else
                             (meta['iter'], loop.max_iters, 'iter'))
        if done >= total:
            print_log(
                f'{source!r} is at {unit} {done}, the end of training '
                f'(max {unit}s: {total}): nothing is left to train. Raise '
                f'train_cfg.max_{unit}s to train on.',
                logger='current',
                level=logging.WARNING)
