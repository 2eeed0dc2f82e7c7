"""Command-line flags shared by ``tools/train.py`` and ``tools/test.py``."""
import argparse
import os
from typing import Optional, Sequence

from mmengine.config import DictAction


def add_common_args(
        parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--cfg-options``, ``--launcher`` and ``--local_rank``.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.

    Returns:
        argparse.ArgumentParser: ``parser``, for chaining.
    """
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (top-level variables '
        'such as checkpoint=PATH or data_root=PATH are re-bound everywhere)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local_rank (--local-rank since 2.0)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def parse_tool_args(
        parser: argparse.ArgumentParser,
        args: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Add the common flags, parse and export ``LOCAL_RANK`` if unset.

    Args:
        parser (argparse.ArgumentParser): The parser with the tool's own
            arguments.
        args (Sequence[str], optional): Arguments; None reads ``sys.argv``.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parsed = add_common_args(parser).parse_args(args)
    os.environ.setdefault('LOCAL_RANK', str(parsed.local_rank))
    return parsed
