"""Train a SLaK segmentor or detector: ``python tools/train.py CONFIG``.

The config's ``default_scope`` (mmseg or mmdet) decides which. Same flags as
mmseg's and mmdet's tools/train.py.
"""
import argparse

from slak_mm.apis import train
from slak_mm.cli import add_skip_checks_arg, parse_tool_args, run_cli
from slak_mm.config import load_config


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
        '--amp',
        action='store_true',
        help='mixed precision, weights stay float32: on CUDA mmengine\'s '
        'AmpOptimWrapper (float16 with dynamic loss scaling; '
        '--cfg-options optim_wrapper.dtype=bfloat16 for bfloat16), on the '
        'CPU bfloat16 autocast (float16 is refused there)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr to the real batch size (auto_scale_lr in the '
        'config gives the base batch size)')
    add_skip_checks_arg(parser)
    return parse_tool_args(parser)


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    train(
        cfg,
        args.config,
        work_dir=args.work_dir,
        resume=args.resume,
        amp=args.amp,
        launcher=args.launcher,
        auto_scale_lr=args.auto_scale_lr,
        skip_checks=args.skip_checks)


if __name__ == '__main__':
    run_cli(main)
