"""Write an inference (deploy) checkpoint: ``python tools/deploy.py CONFIG
CHECKPOINT OUT [--cfg-options k=v ...]``.

Every SLaK large kernel's BatchNorms are folded into its convs and its
branches merged into one cross-shaped (or, with ``decompose=False``, dense)
kernel with a bias; the eval outputs stay the same up to float rounding.
Evaluate the result with the same config and
``--cfg-options model.backbone.deploy=True``.
"""
import argparse

from slak_mm.cli import add_cfg_options_arg, add_unsafe_load_arg, run_cli
from slak_mm.config import load_config
from slak_mm.deploy import DEPLOY_CFG_OPTION, deploy_checkpoint


def parse_args():
    parser = argparse.ArgumentParser(
        description='Merge the SLaK kernel branches for inference')
    parser.add_argument('config', help='config of the trained model')
    parser.add_argument('checkpoint', help='trained mm checkpoint')
    parser.add_argument('out', help='output deploy checkpoint (.pth)')
    add_cfg_options_arg(parser)
    add_unsafe_load_arg(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    info = deploy_checkpoint(
        cfg, args.checkpoint, args.out, config_path=args.config)
    print(f'Wrote {info["out"]}: {info["merged"]} large kernels merged, '
          f'{info["params_before"]:,} -> {info["params_after"]:,} '
          f'parameters.')
    print('Use it with the same config built in deploy form, e.g.\n'
          f'  python tools/test.py {args.config} {info["out"]} '
          f'--cfg-options {DEPLOY_CFG_OPTION}')


if __name__ == '__main__':
    run_cli(main)
