"""Draw a model's predictions over images.

``python demo/image_demo.py IMAGE CONFIG CHECKPOINT [--out FILE]``

IMAGE is an image file or a folder of images. Segmentation configs get the
predicted mask blended over the image (mmseg's SegLocalVisualizer),
detection configs the boxes (and masks) scoring at least ``--score-thr``
(mmdet's DetLocalVisualizer). Without ``--out`` the overlays go to
``--out-dir`` (default ``work_dirs/image_demo``), named as their inputs.
"""
import argparse
import sys

from slak_mm.apis import infer_images
from slak_mm.cli import (add_cfg_options_arg, add_unsafe_load_arg,
                         check_config_arg, run_cli)
from slak_mm.utils import list_images


def parse_args(args=None):
    parser = argparse.ArgumentParser(
        description='Segmentation / detection overlay of images')
    parser.add_argument('image', help='image file or folder of images')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out', help='output image file (single input image only)')
    parser.add_argument(
        '--out-dir',
        default='work_dirs/image_demo',
        help='output folder when --out is not given (default: %(default)s)')
    parser.add_argument(
        '--device', help='cpu, cuda, cuda:1... (default: cuda if available)')
    parser.add_argument(
        '--opacity',
        type=float,
        default=0.5,
        help='segmentation mask opacity in [0, 1] (default: %(default)s)')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='detection score threshold for drawing (default: %(default)s)')
    add_cfg_options_arg(parser)
    add_unsafe_load_arg(parser)
    return check_config_arg(parser, parser.parse_args(args))


def main():
    args = parse_args()
    outs = infer_images(
        args.config,
        args.checkpoint,
        args.image,
        out=args.out,
        out_dir=None if args.out else args.out_dir,
        device=args.device,
        opacity=args.opacity,
        score_thr=args.score_thr,
        cfg_options=args.cfg_options)
    for path in outs:
        print(f'Overlay written to {path}')
    total = len(list_images(args.image))
    if len(outs) < total:  # the skipped ones are named in the log above
        sys.exit(f'error: {total - len(outs)} of {total} images skipped')


if __name__ == '__main__':
    run_cli(main)
