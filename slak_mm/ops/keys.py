"""What a measured choice is valid for: the :class:`TuningKey` of a call.

A key is the op, the device, the compute dtype, N and C, the map size
rounded up to the next ``{4, 5, 6, 7} x 2**k`` (steps of at most 25%;
:func:`bucket`, so detection's variable image sizes share a few keys), the
memory layout, the kernel shapes and whether gradients are wanted. In the
cache file the device is named (GPU model; CPU model and thread count)
instead of indexed (:meth:`TuningKey.cache_name`). Nothing here imports mm
packages.
"""
import functools
from typing import NamedTuple, Optional, Sequence, Tuple

import torch


def bucket(n: int) -> int:
    """Round a map side up to the next ``m * 2**k`` with ``m`` in 4..7.

    Args:
        n (int): Height or width.

    Returns:
        int: ``n`` itself up to 8, else the bucket (e.g. 200 -> 224).
    """
    n = int(n)
    if n <= 8:
        return n
    e = n.bit_length() - 3
    return -(-n // (1 << e)) << e


@functools.lru_cache(maxsize=None)
def _named_device(dev_type: str, index: Optional[int], threads: int) -> str:
    # cached: every 'auto' call names its key
    if dev_type == 'cuda':
        return torch.cuda.get_device_name(index)
    model = ''
    try:
        with open('/proc/cpuinfo') as f:
            model = next((line.split(':', 1)[1].strip()
                          for line in f if line.startswith('model name')), '')
    except OSError:
        pass
    return f'{dev_type}:{model}:{threads}t'


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a conv of ``x`` computes in: autocast's, else the input's.

    Args:
        x (Tensor): The input.

    Returns:
        torch.dtype: The compute dtype.
    """
    if x.is_floating_point() and torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


class TuningKey(NamedTuple):
    """What a measured choice is valid for (see :func:`tuning_key`).

    Args:
        op (str): ``'multi'`` or ``'cross'``.
        device_type (str): ``'cpu'``, ``'cuda'``, ...
        device_index (int | None): The device's index.
        dtype (str): The compute dtype, e.g. ``'torch.float32'``.
        batch (int): N.
        channels (int): C.
        height (int): H, bucketed (:func:`bucket`).
        width (int): W, bucketed.
        layout (str): ``'cl'`` (channels-last) or ``'nchw'``.
        kernels (tuple): ``(kh, kw)`` of each kernel.
        mode (str): ``'train'`` (gradients wanted) or ``'infer'``.
    """
    op: str
    device_type: str
    device_index: Optional[int]
    dtype: str
    batch: int
    channels: int
    height: int
    width: int
    layout: str
    kernels: Tuple[Tuple[int, int], ...]
    mode: str

    def cache_name(self) -> str:
        """The key as the cache file stores it: the device by name (and,
        on the CPU, thread count) instead of by index.

        Returns:
            str: The fields joined by ``|``.
        """
        device_name = _named_device(self.device_type, self.device_index,
                                    torch.get_num_threads())
        return '|'.join(map(str, (self.op, device_name) + tuple(self[3:])))


def tuning_key(op: str, x: torch.Tensor,
               weights: Sequence[torch.Tensor]) -> TuningKey:
    """The key of a call.

    Args:
        op (str): ``'multi'`` or ``'cross'``.
        x (Tensor): The input (N, C, H, W).
        weights (Sequence[Tensor]): The kernels.

    Returns:
        TuningKey: Its fields.
    """
    n, c, h, w = x.shape
    train = torch.is_grad_enabled() and (x.requires_grad
                                         or any(wt.requires_grad
                                                for wt in weights))
    layout = ('cl' if not x.is_contiguous() and x.is_contiguous(
        memory_format=torch.channels_last) else 'nchw')
    return TuningKey(
        op=op,
        device_type=x.device.type,
        device_index=x.device.index,
        dtype=str(compute_dtype(x)),
        batch=int(n),
        channels=int(c),
        height=bucket(h),
        width=bucket(w),
        layout=layout,
        kernels=tuple(tuple(int(s) for s in wt.shape[-2:]) for wt in weights),
        mode='train' if train else 'infer')
