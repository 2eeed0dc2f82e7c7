"""ImageNet top-1/top-5 of an official SLaK checkpoint:
``python tools/test_imagenet.py CONFIG [CHECKPOINT] [--data-root DIR]``.

CONFIG is an mmpretrain config such as
``configs/imagenet/slak_t_in1k_eval.py``; CHECKPOINT defaults to the
config's ``checkpoint`` variable. The official file (``model`` with the
backbone, ``norm.*`` and ``head.*``) is loaded as published, its names
mapped onto the mmpretrain classifier. Metrics are printed and written to
``WORK_DIR/test_metrics.json``. Needs ``pip install -e .[cls]``.
"""
import argparse

from mmengine.dist import get_rank

from slak_mm.apis import evaluate_classifier
from slak_mm.cli import parse_tool_args
from slak_mm.config import load_config


def parse_args():
    parser = argparse.ArgumentParser(
        description='Evaluate an official SLaK checkpoint on ImageNet')
    parser.add_argument('config', help='mmpretrain eval config')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='official SLaK ImageNet checkpoint (default: the config\'s '
        '`checkpoint` variable)')
    parser.add_argument(
        '--data-root',
        help='ImageNet root holding val/<class>/*.JPEG (default: the '
        'config\'s data_root)')
    parser.add_argument('--work-dir', help='where logs and metrics go')
    parser.add_argument(
        '--ema', action='store_true', help='evaluate the model_ema weights')
    parser.add_argument(
        '--out', help='also dump every prediction to this .pkl file')
    return parse_tool_args(parser)  # + --cfg-options, --launcher


def main():
    args = parse_args()
    options = dict(args.cfg_options or {})
    if args.data_root:
        options['data_root'] = args.data_root
    cfg = load_config(args.config, options)
    checkpoint = args.checkpoint or cfg.get('checkpoint')
    if not checkpoint:
        raise SystemExit('No checkpoint given and the config has no '
                         '`checkpoint` variable')
    metrics = evaluate_classifier(
        cfg,
        checkpoint,
        args.config,
        work_dir=args.work_dir,
        use_ema=args.ema,
        out=args.out,
        launcher=args.launcher)
    if get_rank() == 0:
        print(f'{checkpoint}: ' + ', '.join(f'{k} {v:.2f}'
                                            for k, v in metrics.items()))


if __name__ == '__main__':
    main()
