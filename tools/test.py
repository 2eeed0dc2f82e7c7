"""Evaluate a SLaK model: ``python tools/test.py CONFIG CHECKPOINT``.

Prints and writes (``WORK_DIR/test_metrics.json``) mIoU/aAcc/mAcc for
segmentation configs, bbox mAP for VOC, bbox and segm AP for COCO.
"""
import argparse

from mmengine.dist import is_main_process

from slak_mm.apis import test
from slak_mm.cli import add_skip_checks_arg, parse_tool_args, run_cli
from slak_mm.config import load_config


def parse_args():
    parser = argparse.ArgumentParser(description='Test a SLaK model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='dir for logs and metrics')
    parser.add_argument(
        '--show-dir',
        help='save images with predictions drawn here (relative to the '
        'work_dir unless absolute)')
    parser.add_argument(
        '--show', action='store_true', help='show each prediction')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='seconds per --show')
    parser.add_argument(
        '--tta', action='store_true', help='test-time augmentation')
    parser.add_argument(
        '--out',
        help='keep raw predictions: a folder of PNGs (segmentation) or a '
        '.pkl file (detection)')
    add_skip_checks_arg(parser)
    return parse_tool_args(parser)


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    metrics = test(
        cfg,
        args.config,
        args.checkpoint,
        work_dir=args.work_dir,
        show_dir=args.show_dir,
        launcher=args.launcher,
        show=args.show,
        wait_time=args.wait_time,
        tta=args.tta,
        out=args.out,
        skip_checks=args.skip_checks)
    if is_main_process():  # once, not once per rank
        for name, value in metrics.items():
            print(f'{name}: {value:.4f}')


if __name__ == '__main__':
    run_cli(main)
