"""A CheckpointHook whose saves never lose the last good checkpoint."""
import os.path as osp
from typing import List

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from slak_mm.checkpoint import ATOMIC_BACKEND
from slak_mm.engine.stop_signals import uninterrupted
from slak_mm.engine.work_dir_lock import shared_work_dir_allowed
from slak_mm.fileio import atomic_write_bytes, remove_stale_temp_files
from slak_mm.registry import register_hook


class _DeferredRemovals:
    """A file backend that records ``remove`` / ``rmtree`` calls instead of
    running them (everything else goes to the real backend)."""

    def __init__(self, backend):
        self._backend = backend
        self.paths: List[str] = []

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def remove(self, path) -> None:
        self.paths.append(path)

    rmtree = remove


@register_hook
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with crash-safe ordering.

    Why a subclass: mmengine's hook (0.10) removes the oldest checkpoint
    (``max_keep_ckpts``) and the previous best one *before* writing the new
    ones, and writes ``last_checkpoint`` with a plain ``open(..., 'w')``; a
    kill in between leaves no checkpoint at all, or a pointer that is empty
    or names a deleted file. This hook saves in the order

    1. the new checkpoint (atomic with the ``atomic_local`` backend, the
       default here: a kill leaves only a hidden temp file);
    2. ``last_checkpoint``, replaced atomically;
    3. then removes the checkpoints beyond ``max_keep_ckpts`` and the
       previous best one.

    The checkpoint written in step 1 still lists the steps to prune in
    ``keep_ckpt_ids``, so a run resumed after a kill before step 3 removes
    them (mmengine's ``before_train``). A save is
    :func:`~slak_mm.engine.stop_signals.uninterrupted`: SIGTERM or SIGINT
    during it stops training once all three steps are done. ``before_run``
    deletes temp files of killed atomic writes (``.NAME.XXXXXXXX.tmp``) in
    the work_dir (unless ``SLAK_MM_ALLOW_SHARED_WORK_DIR=1``: another run
    may be writing them).

    Args:
        **kwargs: Those of ``mmengine.hooks.CheckpointHook``. Without
            ``backend_args`` / ``file_client_args`` and with a local (or no)
            ``out_dir``, files are written with the ``atomic_local``
            backend.
    """

    def __init__(self, **kwargs):
        out_dir = str(kwargs.get('out_dir') or '')
        if (kwargs.get('backend_args') is None
                and kwargs.get('file_client_args') is None
                and '://' not in out_dir):  # safe by default, where it can
            kwargs['backend_args'] = dict(backend=ATOMIC_BACKEND)
        super().__init__(**kwargs)

    def before_run(self, runner) -> None:
        """Remove temp files left by killed atomic writes.

        Args:
            runner (Runner): The runner.
        """
        if is_main_process() and not shared_work_dir_allowed():
            for path in remove_stale_temp_files(runner.work_dir):
                runner.logger.warning(
                    f'Removed {path}, the temp file of a write that was '
                    'interrupted')

    def _remove_checkpoint(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # deepspeed saves folders
            self.file_backend.rmtree(path)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """Save checkpoint ``step``, point ``last_checkpoint`` at it, then
        prune (the order is the point of this class).

        Args:
            runner (Runner): The runner.
            step (int): Epoch or iteration number of the checkpoint.
            meta (dict): Its ``meta`` (epoch, iter).
        """
        with uninterrupted():  # a stop signal waits for the whole save
            self._save_then_prune(runner, step, meta)

    def _save_then_prune(self, runner, step, meta) -> None:
        prune = []
        # _save_best_checkpoint saves the same step a second time
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            kept = [*self.keep_ckpt_ids, step]
            prune = kept[:-self.max_keep_ckpts]
            # recorded in the checkpoint: a resume prunes what a kill spared
            runner.message_hub.update_info('keep_ckpt_ids', kept)
            self.keep_ckpt_ids.append(step)  # the deque drops the oldest
        self.last_ckpt = self.file_backend.join_path(
            self.out_dir, self.filename_tmpl.format(step))
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            self.filename_tmpl.format(step),
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if self.max_keep_ckpts > 0:
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        if not is_main_process():
            return
        atomic_write_bytes(
            str(self.last_ckpt).encode('utf-8'),
            osp.join(runner.work_dir, 'last_checkpoint'))
        for old_step in prune:
            self._remove_checkpoint(
                self.file_backend.join_path(
                    self.out_dir, self.filename_tmpl.format(old_step)))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """mmengine's best-checkpoint logic, with the previous best removed
        only after the new one is written.

        Args:
            runner (Runner): The runner.
            metrics (dict): Evaluation results.
        """
        with uninterrupted():  # a stop signal waits for the whole save
            backend = self.file_backend
            self.file_backend = deferred = _DeferredRemovals(backend)
            try:
                super()._save_best_checkpoint(runner, metrics)
            finally:
                self.file_backend = backend
            current = {
                getattr(self, 'best_ckpt_path', None),
                *getattr(self, 'best_ckpt_path_dict', {}).values()
            }
            for path in deferred.paths:
                if path not in current:  # a re-saved best keeps its name
                    self._remove_checkpoint(path)
