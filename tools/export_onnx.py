"""Export a model in deploy form to ONNX and check it with onnxruntime:
``python tools/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--backbone-only]
[--shape H W] [--no-verify]``.

Segmentors export as ``inputs -> seg_logits`` (at the input size),
detectors as their backbone + neck features, ``--backbone-only`` as the
SLaK stage features; batch, height and width are dynamic unless
``--static``. Unless ``--no-verify``, onnxruntime runs the file at the
export size and at a second size and the largest difference to PyTorch is
printed; the tool fails if it exceeds ``--rtol`` of the largest output.
Needs ``pip install -e .[onnx]`` (onnx, onnxscript, onnxruntime).
"""
import argparse
import sys

from slak_mm.cli import parse_tool_args, run_cli
from slak_mm.config import load_config
from slak_mm.deploy import export_onnx, verify_onnx


def parse_args():
    parser = argparse.ArgumentParser(
        description='Export a SLaK model (deploy form) to ONNX')
    parser.add_argument('config', help='config of the model')
    parser.add_argument(
        'checkpoint',
        help='trained mm checkpoint (a deploy checkpoint needs '
        '--cfg-options model.backbone.deploy=True)')
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='export the SLaK backbone alone')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[512, 512],
        metavar=('H', 'W'),
        help='example input size (default: 512 512)')
    parser.add_argument(
        '--verify-shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='second size onnxruntime is checked at (default: H+64, W+32; '
        'only with dynamic axes)')
    parser.add_argument(
        '--static',
        action='store_true',
        help='fixed input shape (1, 3, H, W) instead of dynamic axes')
    parser.add_argument('--opset', type=int, help='ONNX opset version')
    parser.add_argument(
        '--verify',
        action=argparse.BooleanOptionalAction,
        default=True,
        help='compare onnxruntime with PyTorch (default: on)')
    parser.add_argument(
        '--rtol',
        type=float,
        default=1e-4,
        help='largest accepted difference, relative to the largest output '
        '(default: 1e-4)')
    return parse_tool_args(parser)  # + --cfg-options


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    info = export_onnx(
        cfg,
        args.checkpoint,
        args.out,
        shape=args.shape,
        backbone_only=args.backbone_only,
        dynamic=not args.static,
        opset=args.opset)
    axes = 'static (1, 3, H, W)' if args.static else 'dynamic N, H, W'
    print(f'Wrote {info["out"]}: {info["kind"]}, {info["merged"]} large '
          f'kernels merged, input "inputs" ({axes}), outputs '
          f'{info["outputs"]}.')
    if info['note']:
        print(info['note'])
    if not args.verify:
        return
    height, width = args.shape
    shapes = [(height, width)]
    if not args.static:
        shapes.append(args.verify_shape or (height + 64, width + 32))
    failed = False
    for res in verify_onnx(args.out, info['module'], shapes):
        ok = res['max_abs_diff'] <= args.rtol * res['max_abs_ref']
        failed |= not ok
        print(f'onnxruntime vs PyTorch at {res["shape"][0]}x'
              f'{res["shape"][1]}: max abs diff {res["max_abs_diff"]:.3g} '
              f'(largest output {res["max_abs_ref"]:.3g}) '
              f'{"OK" if ok else "TOO LARGE"}')
    if failed:
        sys.exit(f'onnxruntime differs from PyTorch by more than '
                 f'{args.rtol:g} of the largest output')


if __name__ == '__main__':
    run_cli(main)
