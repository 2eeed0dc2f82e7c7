"""The implementations of the depthwise convs, as they register
themselves.

Each implementation's module calls :func:`register` when imported:
``torch`` (:mod:`.torch_depthwise`, the reference and the fallback),
``fft`` (:mod:`.fft_depthwise`) and ``triton`` (:mod:`.triton_depthwise`,
where triton imports). The dispatcher (:mod:`.dispatch`) chooses among
:data:`CANDIDATES`. Nothing here imports mm packages.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch

#: The implementation the others are checked against, and the fallback.
REFERENCE = 'torch'


@dataclass(frozen=True)
class Candidate:
    """One implementation of the two ops, as it registers itself.

    The functions get inputs that :func:`slak_mm.ops.check_inputs` has
    validated and that ``available`` accepted; they check nothing again.

    Args:
        available (Callable): ``available(x, weights)`` -> bool: can it run
            on this input (device, dtype) with these kernels?
        multi (Callable): ``multi(x, weights)`` -> tuple of outputs.
        cross (Callable): ``cross(x, weight_v, weight_h, bias)`` -> output.
        needs (str): What it needs, for the error of a forced call that
            cannot run.
        offered_to_auto (Callable): ``offered_to_auto(x)`` -> bool: may
            ``impl='auto'`` time it for ``x``? Default: whenever available.
    """
    available: Callable[[torch.Tensor, Sequence[torch.Tensor]], bool]
    multi: Callable[..., Tuple[torch.Tensor, ...]]
    cross: Callable[..., torch.Tensor]
    needs: str
    offered_to_auto: Callable[[torch.Tensor], bool] = lambda x: True


#: Implementations by name, in registration order.
CANDIDATES: Dict[str, Candidate] = {}


def register(name: str, candidate: Candidate) -> None:
    """Make an implementation available under ``name`` (called by each
    implementation's module when it is imported).

    Args:
        name (str): One of :data:`slak_mm.ops.settings.IMPLS` but
            ``'auto'`` (tests register more).
        candidate (Candidate): The implementation.
    """
    CANDIDATES[name] = candidate


def auto_candidates(
    x: torch.Tensor, weights: Sequence[torch.Tensor] = ()) -> List[str]:
    """The implementations ``'auto'`` may choose for ``x``: those available
    for it (and ``weights``) that offer themselves to ``auto`` (Triton only
    for CUDA tensors: the interpreter runs CPU tensors, but only when
    forced).

    Args:
        x (Tensor): An input.
        weights (Sequence[Tensor]): Its kernels. Default: none.

    Returns:
        list[str]: Names, :data:`REFERENCE` first.
    """
    names = [
        name for name, cand in CANDIDATES.items()
        if cand.offered_to_auto(x) and cand.available(x, weights)
    ]
    return sorted(names, key=lambda name: name != REFERENCE)
