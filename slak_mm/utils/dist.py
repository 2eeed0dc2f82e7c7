"""This process's rank and the number of processes of its run.

Once ``torch.distributed`` is initialised it says; before that (the work
dir lock is taken, the ops tune, before the runner starts the process
group) the launcher's environment variables do (:data:`LAUNCHER_ENV`).
Read here only, for the ops (tuning: only rank 0 writes the cache, and
nothing is measured under DDP) and the engine (only rank 0 locks the
work_dir). Torch only.
"""
import os
from typing import Optional, Sequence, Tuple

import torch.distributed as torch_dist

__all__ = ['LAUNCHER_ENV', 'rank_and_world']

#: Where each launcher puts the global rank and the number of processes
#: before the process group exists (torchrun and mmengine's slurm launcher
#: also set ``RANK`` / ``WORLD_SIZE``, which code that does not know the
#: launcher reads).
LAUNCHER_ENV = dict(
    pytorch=(('RANK', ), ('WORLD_SIZE', )),
    slurm=(('SLURM_PROCID', ), ('SLURM_NTASKS', )),
    mpi=(('OMPI_COMM_WORLD_RANK', 'PMI_RANK'), ('OMPI_COMM_WORLD_SIZE',
                                                'PMI_SIZE')))


def _first_int(names: Sequence[str]) -> Optional[int]:
    """The first of the variables ``names`` that is set to an integer."""
    for name in names:
        try:
            return int(os.environ[name])
        except (KeyError, ValueError):
            continue
    return None


def rank_and_world(launcher: str = 'pytorch') -> Tuple[int, int]:
    """This process's global rank and the number of processes of its run.

    Args:
        launcher (str): ``pytorch`` (default: ``$RANK`` / ``$WORLD_SIZE``,
            what code that does not know the launcher reads), ``slurm``,
            ``mpi`` or ``none`` (one process), for the time before
            ``torch.distributed`` is initialised.

    Returns:
        tuple[int, int]: ``(rank, world_size)`` of ``torch.distributed``
        when it is initialised, else the launcher's; a variable that is
        unset or no integer counts as rank 0 of 1 process.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        return torch_dist.get_rank(), torch_dist.get_world_size()
    rank_names, world_names = LAUNCHER_ENV.get(launcher, ((), ()))
    rank, world = _first_int(rank_names), _first_int(world_names)
    return (0 if rank is None else rank), (1 if world is None else world)
