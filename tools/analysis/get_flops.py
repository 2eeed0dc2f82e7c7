"""Parameters and FLOPs of a config's model or backbone, dense and sparse.

    python tools/analysis/get_flops.py CONFIG [--shape H [W]]
        [--backbone-only] [--checkpoint CKPT] [--deploy] [--device cuda]
        [--out result.json] [--cfg-options k=v ...]

Counts with mmengine's FlopAnalyzer: FLOPs are multiply-adds (MACs), one
multiply-add = one FLOP, the convention of the SLaK paper's tables. Three
counts per row: dense; "paper" (reported first: the paper's convention,
every masked weight of a ``sparse=True`` backbone at the uniform density
``1 - sparsity``, so it needs no checkpoint); and "actual", only the
non-zero weights and the multiply-adds they take. Without ``--checkpoint``
the weights are random and the actual zeros are the config's random masks
(ERK by default); a trained model's need its checkpoint. JSON keys:
``flops`` / ``flops_paper`` / ``flops_sparse`` (and ``params_*``), labelled
in ``count_labels``. Default input: 224 x 224 for
``--backbone-only``, else 512 x 512 (a segmentor's ``tensor`` forward
without the auxiliary head; a detector's with one image's metainfo).
"""
import argparse

from slak_mm.cli import add_cfg_options_arg, add_unsafe_load_arg, run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('config', help='mm config file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        help='input H W (or one side); default 224 (backbone) / 512 (model)')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='count model.backbone only')
    parser.add_argument(
        '--checkpoint',
        help='weights whose zeros are counted: mm checkpoint of the model, '
        'or an official / backbone checkpoint')
    parser.add_argument(
        '--deploy',
        action='store_true',
        help='merge the large kernels (switch_to_deploy) before counting')
    parser.add_argument(
        '--device',
        default='cpu',
        help='where to trace (cuda: the Triton path); default cpu')
    parser.add_argument('--out', help='also write the result as JSON')
    add_cfg_options_arg(parser)
    add_unsafe_load_arg(parser)
    args = parser.parse_args(argv)
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error('--shape takes H W or one side')
    if args.out:  # checked now, not after minutes of counting
        import os.path as osp
        folder = osp.dirname(osp.abspath(args.out))
        if not osp.isdir(folder) or osp.isdir(args.out):
            parser.error(f'--out {args.out!r}: the folder {folder!r} does '
                         f'not exist or the path is a folder')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    from slak_mm.analysis.complexity import format_report, get_flops
    from slak_mm.config import load_config
    from slak_mm.fileio import check_output_path, write_json_atomic
    if args.out:  # checked now, not after minutes of counting
        check_output_path(args.out,
                          dict(config=args.config, checkpoint=args.checkpoint))
    cfg = load_config(args.config, args.cfg_options)
    result = get_flops(
        cfg,
        shape=args.shape,
        backbone_only=args.backbone_only,
        checkpoint=args.checkpoint,
        deploy=args.deploy,
        device=args.device)
    result['config'] = args.config
    print(f'config: {args.config}')
    print(format_report(result))
    if args.out:
        write_json_atomic(result, args.out)
        print(f'written: {args.out}')
    return result


if __name__ == '__main__':
    run_cli(main)
