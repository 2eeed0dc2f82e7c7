"""Convert an official SLaK ImageNet checkpoint to an mm checkpoint.

``python tools/convert_checkpoint.py SLaK_tiny_checkpoint.pth out.pth
[--ema]`` writes ``{'meta', 'state_dict'}`` with ``backbone.`` keys and the
sparsity masks, and prints the weight density per stage. The input is read
with ``torch.load(weights_only=True)``.
"""
import argparse

from slak_mm.checkpoint import convert_official_checkpoint
from slak_mm.cli import add_unsafe_load_arg, run_cli


def parse_args():
    parser = argparse.ArgumentParser(
        description='Official SLaK checkpoint -> mm checkpoint with masks')
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output mm checkpoint (.pth)')
    parser.add_argument(
        '--ema',
        action='store_true',
        help='convert the model_ema weights instead of model')
    add_unsafe_load_arg(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    global_density, per_stage = convert_official_checkpoint(
        args.src, args.dst, use_ema=args.ema)
    print(f'Wrote {args.dst} ({"model_ema" if args.ema else "model"} '
          f'weights, backbone. keys, sparsity masks)')
    print('weight density (non-zero fraction of conv/linear weights):')
    for group, density in per_stage.items():
        print(f'  {group:<8} {density:.4f}')
    print(f'  {"global":<8} {global_density:.4f}')


if __name__ == '__main__':
    run_cli(main)
