"""Train a SLaK segmentor or detector: ``python tools/train.py CONFIG``.

The config's ``default_scope`` (mmseg or mmdet) decides which. Same flags as
mmseg's and mmdet's tools/train.py.
"""
import argparse
import os

from mmengine.config import DictAction

from slak_mm.apis import load_config, train


def parse_args():
    parser = argparse.ArgumentParser(description='Train a SLaK model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='dir for logs and checkpoints')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CHECKPOINT, or without a value from the latest '
        'checkpoint in the work_dir')
    parser.add_argument(
        '--amp', action='store_true', help='mixed precision (CUDA)')
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
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    train(cfg, args.config, work_dir=args.work_dir, resume=args.resume,
          amp=args.amp, launcher=args.launcher)


if __name__ == '__main__':
    main()
