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
import gc
import io
import os.path as osp
import random
import re
import tempfile

import numpy as np
import torch

from slak_mm.analysis.erf import (DEFAULT_THRESHOLDS, MIN_SIZE, ERFImages,
                                  build_erf_backbone, erf_contribution,
                                  find_images, format_area_table,
                                  high_contribution_area, plot_erf,
                                  synthetic_images, threshold_key)
from slak_mm.checkpoint import is_remote
from slak_mm.cli import add_cfg_options_arg, add_unsafe_load_arg, run_cli
from slak_mm.fileio import (atomic_write_bytes, check_output_folder,
                            write_json_atomic)


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


def model_entries(models, checkpoints):
    """``(name, spec, checkpoint)`` per MODEL; names are unique file stems."""
    entries, seen = [], {}
    for i, model in enumerate(models):
        spec, _, ckpt = model.partition('=')
        if checkpoints and checkpoints[i].lower() != 'none':
            if ckpt:
                raise SystemExit(f'{model!r}: checkpoint given twice (=CKPT '
                                 f'and --checkpoints)')
            ckpt = checkpoints[i]
        if spec.startswith('timm:'):
            name = 'timm_' + spec[len('timm:'):]
        else:
            name = osp.splitext(osp.basename(spec))[0]
        if ckpt:
            name += '-' + osp.splitext(osp.basename(ckpt))[0]
        name = re.sub(r'[^\w.+-]', '_', name)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f'{name}_{seen[name]}'
        entries.append((name, spec, ckpt or None))
    return entries


def check_entries(entries):
    """Stop with one line, before any model runs, on a bad MODEL."""
    for _, spec, ckpt in entries:
        if spec.startswith('timm:'):
            import timm
            if spec[len('timm:'):] not in timm.list_models():
                raise SystemExit(f'error: unknown timm model in {spec!r}; '
                                 f'see timm.list_models()')
        elif not spec.endswith('.py'):
            raise SystemExit(f'error: unknown model spec {spec!r}: give a '
                             f'config file (*.py) or timm:NAME')
        elif not osp.isfile(spec):
            raise SystemExit(f'error: config file not found: {spec!r}')
        if ckpt and not is_remote(ckpt) and not osp.isfile(ckpt):
            raise SystemExit(f'error: checkpoint not found: {ckpt!r}')


def main(argv=None):
    args = parse_args(argv)
    entries = model_entries(args.models, args.checkpoints)
    check_entries(entries)
    if args.images is not None:
        try:
            find_images(args.images)
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f'error: {err}')
    check_output_folder(args.out_dir, '--out-dir')  # before any work
    with tempfile.TemporaryDirectory(prefix='slak_erf_') as tmp:
        if args.synthetic is not None:
            paths = synthetic_images(tmp, min(args.synthetic, args.num_images),
                                     args.size, args.seed)
            source = f'{len(paths)} synthetic images'
        else:
            paths = find_images(args.images, args.num_images)
            source = f'{len(paths)} images from {args.images}'
        print(f'ERF at {args.size}x{args.size} on {source}, '
              f'device {args.device}')

        named_scores, named_areas, report = {}, {}, {}
        for name, spec, ckpt in entries:
            # the same random weights whatever the order of the models
            torch.manual_seed(args.seed)
            random.seed(args.seed)
            np.random.seed(args.seed)
            backbone, preprocess = build_erf_backbone(spec, ckpt,
                                                      args.cfg_options)
            images = ERFImages(paths, args.size, **preprocess)
            print(f'{name}: {spec}' +
                  (f' with {ckpt}' if ckpt else ' (random weights)'))
            scores = erf_contribution(
                backbone, images, device=args.device, progress=True)
            del backbone
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            areas = high_contribution_area(scores, DEFAULT_THRESHOLDS)
            array = io.BytesIO()
            np.save(array, scores)
            atomic_write_bytes(array.getvalue(),
                               osp.join(args.out_dir, f'{name}_erf.npy'))
            plot_erf({name: scores},
                     osp.join(args.out_dir, f'{name}_erf.png'),
                     areas={name: areas},
                     cmap=args.cmap,
                     dpi=args.dpi)
            named_scores[name], named_areas[name] = scores, areas
            report[name] = dict(
                spec=spec,
                checkpoint=ckpt,
                areas={
                    threshold_key(t):
                    dict(
                        threshold=t,
                        side=a['side'],
                        area_ratio=a['area_ratio'])
                    for t, a in areas.items()
                })

    compare = plot_erf(
        named_scores,
        osp.join(args.out_dir, 'erf_compare.png'),
        areas=named_areas,
        cmap=args.cmap,
        dpi=args.dpi)
    json_path = osp.join(args.out_dir, 'erf_area_ratios.json')
    write_json_atomic(
        dict(
            size=args.size,
            num_images=len(paths),
            images='synthetic' if args.synthetic is not None else args.images,
            seed=args.seed,
            thresholds=list(DEFAULT_THRESHOLDS),
            models=report), json_path)
    print()
    print(format_area_table(named_areas))
    print(f'\nWrote {json_path}, {compare} and the per-model .npy/.png '
          f'files to {args.out_dir}')


if __name__ == '__main__':
    run_cli(main)
