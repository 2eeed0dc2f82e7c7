"""Effective receptive field of backbones (SLaK paper's method).

    python tools/analysis/erf.py MODEL [MODEL ...] (--images DIR |
        --synthetic N) [--size 1024] [--num-images 50] [--out-dir DIR]
        [--checkpoints CKPT ...] [--device cuda] [--seed 0]

MODEL is an mm config (its ``model.backbone``; random weights unless a
checkpoint is given) or ``timm:NAME`` (e.g. ``timm:convnext_tiny``);
``MODEL=CKPT`` gives it a checkpoint (official SLaK file or mm checkpoint for
configs, a timm weights file for ``timm:``). Writes ``<name>_erf.npy`` (mean
contribution map), ``<name>_erf.png``, ``erf_compare.png`` (all models side
by side) and ``erf_area_ratios.json`` (side and area ratio of the smallest
centred square holding 20/30/50/99% of the log-scaled contribution) to
``--out-dir`` and prints the table. The paper uses 50 ImageNet validation
images at 1024 x 1024; on a CPU use e.g. ``--size 256 --num-images 10``.
"""
import argparse

import torch

from slak_mm.analysis.erf import MIN_SIZE, format_area_table
from slak_mm.analysis.erf_compare import compare_erfs, erf_models
from slak_mm.cli import add_cfg_options_arg, add_unsafe_load_arg, run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument(
        'models',
        nargs='+',
        metavar='MODEL',
        help='config path or timm:NAME, optionally =CHECKPOINT')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--images', help='folder of jpg/png images')
    source.add_argument(
        '--synthetic',
        type=int,
        metavar='N',
        help='generate N synthetic ADE20K-style images instead')
    parser.add_argument(
        '--size',
        type=int,
        default=1024,
        help='images are resized (bicubic) to SIZE x SIZE; paper: 1024')
    parser.add_argument(
        '--num-images',
        type=int,
        default=50,
        help='use at most this many images (sorted by name); paper: 50')
    parser.add_argument(
        '--checkpoints',
        nargs='+',
        help='one checkpoint per MODEL, "none" for random weights')
    parser.add_argument('--out-dir', default='work_dirs/erf')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='default: cuda when available, else cpu')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the random weights (reset before each model) and of '
        'the synthetic images')
    parser.add_argument('--cmap', default='RdYlGn', help='matplotlib cmap')
    parser.add_argument(
        '--dpi',
        type=int,
        default=100,
        help='PNG dots per inch (panels are 3.2 inches wide)')
    add_cfg_options_arg(parser)
    add_unsafe_load_arg(parser)
    args = parser.parse_args(argv)
    if args.size < MIN_SIZE:
        parser.error(f'--size must be >= {MIN_SIZE}, got {args.size}')
    if args.num_images < 1:
        parser.error(f'--num-images must be >= 1, got {args.num_images}')
    if args.synthetic is not None and args.synthetic < 1:
        parser.error(f'--synthetic must be >= 1, got {args.synthetic}')
    if args.checkpoints and len(args.checkpoints) != len(args.models):
        parser.error(f'--checkpoints needs one entry per MODEL '
                     f'({len(args.models)}), got {len(args.checkpoints)}')
    return args


def main(argv=None):
    args = parse_args(argv)
    results = compare_erfs(
        erf_models(args.models, args.checkpoints),
        args.out_dir,
        images=args.images,
        synthetic=args.synthetic,
        num_images=args.num_images,
        size=args.size,
        device=args.device,
        seed=args.seed,
        cfg_options=args.cfg_options,
        cmap=args.cmap,
        dpi=args.dpi,
        progress=True)
    print()
    print(format_area_table(results.areas))
    print(f'\nWrote {results.json_path}, {results.figure_path} and the '
          f'per-model .npy/.png files to {args.out_dir}')


if __name__ == '__main__':
    run_cli(main)
