"""Write small synthetic datasets in the real ADE20K / VOC / COCO / ImageNet
layouts.

``python tools/generate_synthetic_data.py OUT_DIR [--datasets ade20k voc coco
imagenet] [--num-train N] [--num-val N] [--img-size H W] [--seed S]``

Writes ``OUT_DIR/ADEChallengeData2016``, ``OUT_DIR/VOCdevkit``,
``OUT_DIR/coco`` (instances, HTC's stuff maps, panoptic) and
``OUT_DIR/imagenet`` (class folders); point a config's ``data_root`` at
them.
"""
import argparse
import os.path as osp
import sys

try:
    from slak_mm.datasets import generate_all
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from slak_mm.datasets import generate_all


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate synthetic ADE20K / VOC / COCO / ImageNet '
        'datasets')
    parser.add_argument('out_dir', help='output root folder')
    parser.add_argument(
        '--datasets',
        nargs='+',
        choices=['ade20k', 'voc', 'coco', 'imagenet'],
        default=['ade20k', 'voc', 'coco', 'imagenet'],
        help='datasets to write (default: all)')
    parser.add_argument(
        '--num-train',
        type=int,
        help='training images per dataset (default: 32, 48 for ImageNet)')
    parser.add_argument(
        '--num-val',
        type=int,
        help='validation / test images per dataset (default: 8, 12 for '
        'ImageNet)')
    parser.add_argument(
        '--img-size',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='image height and width (default: 128 128 for ADE20K, '
        '160 160 for VOC and COCO, 96 96 for ImageNet)')
    parser.add_argument(
        '--max-objects',
        type=int,
        default=4,
        help='at most this many objects per image (default: 4)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        paths = generate_all(
            args.out_dir,
            datasets=args.datasets,
            num_train=args.num_train,
            num_val=args.num_val,
            img_size=args.img_size,
            max_objects=args.max_objects,
            seed=args.seed)
    except (ValueError, FileExistsError) as e:
        sys.exit(f'error: {e}')
    for name, path in paths.items():
        print(f'{name}: {path}')


if __name__ == '__main__':
    main()
