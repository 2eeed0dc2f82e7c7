"""The compatibility sweep: SLaK in one config of every model family that
mmdet, mmseg and mmpretrain package, as the documented recipe puts it
there, one training step and one test step each on synthetic data, on the
CPU; writes docs/compatibility.md.

``python tools/compat_sweep.py [--families 'mmdet/yolo*' ...] [--jobs 2]
[--timeout 600] [--work-dir work_dirs/compat_sweep] [--out FILE]``

(``make compat`` runs all of it.) Each family runs in a process of its
own (time and memory limited); its user config and logs stay in
``WORK_DIR/<package>__<family>/`` (the checkpoint is deleted once tested),
every row in ``WORK_DIR/results.json``.
A run of some families (``--families``) updates their rows there; the page
is rewritten once every family has a row.
"""
import argparse
import os.path as osp
import sys
import time

try:
    from slak_mm.cli import run_cli
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from slak_mm.cli import run_cli

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='SLaK in every packaged mmdet / mmseg / mmpretrain '
        'model family: one training and one test step each')
    parser.add_argument(
        '--packages',
        nargs='+',
        default=['mmdet', 'mmseg', 'mmpretrain'],
        choices=['mmdet', 'mmseg', 'mmpretrain'],
        help='frameworks to sweep (default: all three)')
    parser.add_argument(
        '--families',
        nargs='+',
        default=[],
        metavar='PATTERN',
        help="only these families (fnmatch on 'package/folder', e.g. "
        "'mmdet/yolo*'); their rows replace those of earlier runs")
    parser.add_argument(
        '--jobs', type=int, default=2, help='families at once (default: 2)')
    parser.add_argument(
        '--timeout',
        type=float,
        default=600.,
        help='seconds a family may take before it is killed (default: 600)')
    parser.add_argument(
        '--memory-gb',
        type=float,
        default=6.,
        help='address space a family may add to the frameworks\' '
        '(RLIMIT_AS; default: 6)')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/compat_sweep',
        help='data, one folder per family, results.json')
    parser.add_argument(
        '--out',
        default=osp.join(ROOT, 'docs', 'compatibility.md'),
        help='the page written when every family has a row')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from slak_mm.compat.report import render_report, summary
    from slak_mm.compat.sweep import run_sweep
    from slak_mm.fileio import atomic_write_bytes

    def progress(result, done, total):
        line = f'[{done}/{total}] {result.family}: {result.outcome}'
        if result.outcome != 'pass':
            line += f' ({result.stage}) {result.message[:160]}'
        print(f'{line} [{result.seconds:.0f} s]', flush=True)

    start = time.monotonic()
    results, complete = run_sweep(args.work_dir, args.packages, args.families,
                                  args.jobs, args.timeout, args.memory_gb,
                                  progress)
    seconds = time.monotonic() - start
    for key, row in summary(results).items():
        print(f'{key}: {row["passed"]} of {row["families"]} families pass, '
              f'{row["na"]} n/a, {row["failed"]} fail')
    if not complete:
        print(f'{args.out} not written: some families have no row yet '
              f'(run without --families)')
        return
    full = not args.families
    page = render_report(results, seconds if full else None, args.jobs)
    atomic_write_bytes(page.encode(), args.out)
    print(f'written: {args.out} ({seconds / 60:.1f} min)')


if __name__ == '__main__':
    run_cli(main)
