"""Which checkpoint ``--resume`` (auto) resumes from.

mmengine's ``Runner.load_or_resume`` trusts ``WORK_DIR/last_checkpoint``
blindly (``find_latest_checkpoint``): a missing pointer silently trains from
scratch, an empty one or one naming a deleted or damaged file crashes. Here
the pointer is checked, and when it does not name a complete checkpoint the
newest complete ``iter_N.pth`` / ``epoch_N.pth`` in the folder is used
instead, with a note saying which and why. "Complete" is
:func:`~slak_mm.checkpoint.checkpoint_problem` finding nothing (a legacy
non-zip file cannot be checked, so it is not picked).
"""
import os
import os.path as osp
import re
from typing import List, Optional, Tuple

from mmengine.config import Config

from .reading import checkpoint_problem

__all__ = ['POINTER_NAME', 'find_resume_checkpoint', 'resolve_auto_resume']

#: The file in the work_dir naming the latest checkpoint (mmengine's).
POINTER_NAME = 'last_checkpoint'


def _numbered_checkpoints(folder: str, filename_tmpl: str) -> List[str]:
    """Files of ``folder`` named by ``filename_tmpl``, newest number first."""
    head, _, tail = filename_tmpl.partition('{}')
    pattern = re.compile(f'^{re.escape(head)}(\\d+){re.escape(tail)}$')
    try:
        names = os.listdir(folder)
    except (OSError, ValueError):  # missing, not a folder, NUL in the name
        return []
    numbered = [(int(m.group(1)), name) for name in names
                if (m := pattern.match(name))]
    return [osp.join(folder, name) for _, name in sorted(numbered)[::-1]]


def _newer_complete(target: str, filename_tmpl: str) -> Optional[str]:
    """A complete checkpoint numbered above ``target`` in its folder."""
    folder = osp.dirname(osp.abspath(target))
    numbered = _numbered_checkpoints(folder, filename_tmpl)
    if osp.abspath(target) not in numbered:  # not one of the series
        return None
    for path in numbered[:numbered.index(osp.abspath(target))]:
        if checkpoint_problem(path) is None:
            return path
    return None


def find_resume_checkpoint(
    work_dir: str,
    filename_tmpl: str = 'iter_{}.pth',
    folders: Tuple[str, ...] = ()
) -> Tuple[Optional[str], List[str]]:
    """The checkpoint an automatic resume in ``work_dir`` should load.

    ``WORK_DIR/last_checkpoint`` when it names a complete file (or a remote
    URI, not checked), unless a complete checkpoint numbered above it lies
    beside it (saved, then the pointer update failed, e.g. on a full
    disk: the newer one is taken, with a note); otherwise the
    highest-numbered complete checkpoint in the pointer's folder, the
    work_dir and ``folders``.

    Args:
        work_dir (str): The run's work_dir (holds ``last_checkpoint``).
        filename_tmpl (str): Checkpoint names, ``{}`` for the number
            (``CheckpointHook.filename_tmpl``).
        folders (tuple[str]): More folders holding checkpoints (the hook's
            ``out_dir``).

    Returns:
        tuple[str | None, list[str]]: The path (None: nothing to resume) and
        notes for the log on why it was chosen (empty when the pointer was
        fine).
    """
    pointer = osp.join(work_dir, POINTER_NAME)
    notes, target = [], ''
    try:
        with open(pointer, encoding='utf-8', errors='replace') as f:
            target = f.read(4096).strip()  # a path: PATH_MAX is 4096
    except FileNotFoundError:
        notes.append(f'{pointer} does not exist')
    except OSError as err:
        notes.append(f'{pointer} is unreadable: {err}')
    else:
        if '://' in target:  # a remote backend's file: mmengine's business
            return target, []
        problem = (
            checkpoint_problem(target) if target else 'the file is empty')
        if problem is None:
            newer = _newer_complete(target, filename_tmpl)
            if newer:  # saved, but the pointer update failed (disk full)
                return newer, [
                    f'{pointer} names {target}, but {newer} is newer and '
                    f'complete (the pointer was not updated after it was '
                    f'saved): resuming from {newer}'
                ]
            return target, []
        notes.append(f'{pointer} -> {target!r} is unusable: {problem}'
                     if target else f'{pointer} is unusable: {problem}')
    search = [osp.dirname(target)] if target else []
    search += [work_dir, *folders]
    for folder in dict.fromkeys(osp.abspath(d) for d in search):
        for path in _numbered_checkpoints(folder, filename_tmpl):
            problem = checkpoint_problem(path)
            if problem is None:
                notes.append(f'resuming from the newest complete checkpoint '
                             f'instead: {path}')
                return path, notes
            notes.append(f'skipped {path}: {problem}')
    notes.append(f'no complete checkpoint ({filename_tmpl.format("N")}) '
                 f'in {work_dir}: training starts from scratch')
    return None, notes


def resolve_auto_resume(cfg: Config) -> List[str]:
    """Turn an automatic resume (``resume=True``, no ``load_from``) into an
    explicit one, so mmengine never reads ``last_checkpoint`` itself.

    Sets ``cfg.load_from`` to :func:`find_resume_checkpoint`'s choice, or
    ``cfg.resume = False`` when there is nothing to resume. Other configs
    are left alone.

    Args:
        cfg (Config): The training config, ``work_dir`` set.

    Returns:
        list[str]: Warnings for the run's log (empty if nothing to say).
    """
    if not cfg.get('resume') or cfg.get('load_from'):
        return []
    hook = cfg.get('default_hooks', {}).get('checkpoint') or {}
    tmpl = hook.get('filename_tmpl') or ('epoch_{}.pth' if hook.get(
        'by_epoch', True) else 'iter_{}.pth')
    folders = ()
    if hook.get('out_dir'):  # CheckpointHook: out_dir/basename(work_dir)
        folders = (osp.join(hook['out_dir'],
                            osp.basename(cfg.work_dir.rstrip(osp.sep))), )
    path, notes = find_resume_checkpoint(cfg.work_dir, tmpl, folders)
    cfg.load_from = path
    cfg.resume = path is not None
    return [f'Auto resume: {note}' for note in notes]
