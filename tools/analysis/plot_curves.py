"""Training curves of a run as one PNG.

    python tools/analysis/plot_curves.py WORK_DIR [--keys loss lr density
        mIoU] [--out FILE]

Reads the latest ``WORK_DIR/<timestamp>/vis_data/scalars.json`` (written by
mmengine's LocalVisBackend during tools/train.py) and draws one subplot per
key against the iteration (validation metrics of epoch-based detection runs
against the epoch). Default keys: whichever of loss, lr, density and the
main metric (mIoU, pascal_voc/mAP, coco/bbox_mAP, coco/segm_mAP) are logged.
Default output: ``WORK_DIR/curves.png``.
"""
import argparse
import os.path as osp
import sys

from slak_mm.analysis.curves import load_scalars, plot_curves
from slak_mm.fileio import WriteFailedError, check_output_path


def parse_args(args=None):
    parser = argparse.ArgumentParser(
        description='Plot loss / lr / density / metric curves of a run')
    parser.add_argument(
        'work_dir', help='work dir of tools/train.py (or a scalars.json)')
    parser.add_argument(
        '--keys',
        nargs='+',
        help='scalars to plot; a metric name also finds prefixed keys '
        '(mAP -> pascal_voc/mAP). Default: loss, lr, density and the main '
        'metric, those logged')
    parser.add_argument(
        '--out', help='output image (default WORK_DIR/'
        'curves.png)')
    parser.add_argument('--title', help='figure title')
    parser.add_argument(
        '--list', action='store_true', help='print the logged keys and exit')
    return parser.parse_args(args)


def main():
    args = parse_args()
    try:
        scalars = load_scalars(args.work_dir)
    except FileNotFoundError as e:
        sys.exit(f'error: {e}')
    if args.list:
        for key, (steps, _) in sorted(scalars.series.items()):
            print(f'{key}: {len(steps)} points')
        return
    out = args.out
    if out is None:
        root = (
            args.work_dir
            if osp.isdir(args.work_dir) else osp.dirname(args.work_dir))
        out = osp.join(root, 'curves.png')
    try:
        check_output_path(out, dict(log=scalars.path))
        plot_curves(scalars, args.keys, out, title=args.title)
    except (KeyError, ValueError, WriteFailedError) as e:
        sys.exit(f'error: {e.args[0] if e.args else e}')
    print(f'Curves of {scalars.path} written to {out}')


if __name__ == '__main__':
    main()
