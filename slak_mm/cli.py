"""Command-line plumbing shared by the tools (``tools/``, ``demo/``):
common flags and one-line errors.

The tools are thin: they parse their arguments here, load the config with
:func:`slak_mm.config.load_config` and call an action of
:mod:`slak_mm.apis`, :mod:`slak_mm.deploy` or :mod:`slak_mm.analysis`
inside :func:`run_cli`.
"""
import argparse
import os
import re
import sys
from typing import Callable, Optional, Sequence

from mmengine.config import DictAction

from slak_mm.checkpoint import UNSAFE_LOAD_ENV, CheckpointError
from slak_mm.config import CHECKS, dict_option_problem, not_a_config
from slak_mm.engine.stop_signals import TrainingStopped, as_interruption
from slak_mm.engine.work_dir_lock import WorkDirBusyError
from slak_mm.fileio import WriteFailedError

__all__ = [
    'TRACEBACK_ENV', 'USER_ERRORS', 'CfgOptionsAction', 'add_cfg_options_arg',
    'add_common_args', 'add_skip_checks_arg', 'add_unsafe_load_arg',
    'check_config_arg', 'parse_tool_args', 'run_cli'
]

#: Set to 1 to see the full traceback of a tool's error.
TRACEBACK_ENV = 'SLAK_MM_TRACEBACK'
#: Errors that are the user's input (a path, a file, a value), reported as
#: one line; anything else is a bug and keeps its traceback.
USER_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError,
               CheckpointError, WorkDirBusyError, WriteFailedError, ValueError,
               KeyError)

#: Config keys that name a file or folder: a number given for one is the
#: path it spells (``data_root=2016``).
PATH_KEYS = ('data_root', 'ann_file', 'load_from', 'work_dir', 'img_path',
             'seg_map_path', 'out_dir')


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` that names a ``key=value`` item without
    ``=`` instead of failing with "not enough values to unpack", and a
    ``dict(...)`` value, which it would keep as a string or recurse on
    until a ``RecursionError``."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values:
            if '=' not in item:
                parser.error(
                    f'{option_string} expects key=value items, got {item!r} '
                    f'(e.g. {option_string} train_cfg.max_iters=1000)')
            problem = dict_option_problem(*item.split('=', 1))
            if problem:
                parser.error(problem)
        super().__call__(parser, namespace, values, option_string)
        # mmengine reads `data_root=007` as the number 7: a path key keeps
        # the text it was given
        options = getattr(namespace, self.dest)
        for item in values:
            key, text = item.split('=', 1)
            if key.split('.')[-1] in PATH_KEYS and isinstance(
                    options.get(key), (int, float)):
                options[key] = text


class _UnsafeLoadAction(argparse.Action):

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        # an environment variable reaches every rank and every loader
        os.environ[UNSAFE_LOAD_ENV] = '1'
        setattr(namespace, self.dest, True)


def add_cfg_options_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--cfg-options key=value ...``.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
    """
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config settings, key=value (top-level variables '
        'such as checkpoint=PATH or data_root=PATH are re-bound everywhere)')


def add_unsafe_load_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--unsafe-load``: read checkpoints the safe loader refuses
    (pickled Python objects; only for files you trust).

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
    """
    parser.add_argument(
        '--unsafe-load',
        action=_UnsafeLoadAction,
        default=False,
        help='load checkpoints that hold arbitrary pickled Python objects '
        f'(runs their code: only for files you trust; same as '
        f'{UNSAFE_LOAD_ENV}=1)')


def add_skip_checks_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--skip-checks NAME ...``: pre-run checks not to run (the
    config key ``skip_checks`` does the same).

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
    """
    parser.add_argument(
        '--skip-checks',
        nargs='+',
        default=[],
        choices=sorted(CHECKS),
        metavar='CHECK',
        help='pre-run checks not to run: ' +
        '; '.join(f'{name}: {what}' for name, what in sorted(CHECKS.items())))


def add_common_args(
        parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--cfg-options``, ``--unsafe-load``, ``--launcher`` and
    ``--local_rank``.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.

    Returns:
        argparse.ArgumentParser: ``parser``, for chaining.
    """
    add_cfg_options_arg(parser)
    add_unsafe_load_arg(parser)
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
    parsed = check_config_arg(parser, add_common_args(parser).parse_args(args))
    os.environ.setdefault('LOCAL_RANK', str(parsed.local_rank))
    return parsed


def check_config_arg(parser: argparse.ArgumentParser,
                     parsed: argparse.Namespace) -> argparse.Namespace:
    """Refuse an image or checkpoint given as the ``config`` argument (the
    arguments in the wrong order), with the tool's usage.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        parsed (argparse.Namespace): Its parsed arguments.

    Returns:
        argparse.Namespace: ``parsed``.

    Raises:
        ValueError: ``'IMG is an image, not a config; usage: ...'``.
    """
    config = getattr(parsed, 'config', None)
    problem = not_a_config(config) if isinstance(config, str) else None
    if problem:
        usage = ' '.join(parser.format_usage().split())
        while re.search(r'\[[^][]*\]', usage):  # the options, nested too
            usage = re.sub(r' ?\[[^][]*\]', '', usage)
        raise ValueError(f'{problem}; {usage} [options]')
    return parsed


def run_cli(main: Callable[[], object]) -> None:
    """Run a tool's ``main``; a user error ends it with one line
    ``error: ...`` on stderr and exit status 1 (``SLAK_MM_TRACEBACK=1``
    shows the traceback); a training stopped by SIGTERM or SIGINT exits
    with ``128 + signal`` after its log line, and Ctrl-C anywhere else with
    ``130`` after the line ``SIGINT received: stopped``.

    Args:
        main (callable): The tool's entry point.
    """
    try:
        main()
    except TrainingStopped as stop:  # already logged where it stopped
        sys.exit(stop.exit_status)
    except (Exception, KeyboardInterrupt) as err:
        if os.environ.get(TRACEBACK_ENV, '0') == '1':
            raise
        stop = as_interruption(err)  # Ctrl-C outside training
        if stop is not None:
            print(f'{stop}: stopped', file=sys.stderr)
            sys.exit(stop.exit_status)
        if not isinstance(err, USER_ERRORS):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args \
            else str(err)
        sys.exit(f'error: {message}')
