"""Speed of SLaK's large kernels: ratios from one run, written as JSON.

Ops (torch + Triton only; runs on a bare GPU box)::

    python tools/benchmark.py op [--device cuda] [--dtype fp32 bf16]
        [--backward] [--batch 8] [--size 512] [--out op.json]

times SLaK-T's three branch convs per stage with every implementation of
``slak_mm.ops`` (torch, fft, triton on CUDA) and with ``auto`` (the
measured choice, which it names), interleaved, and prints their totals.

A config's backbone or whole model, in several variants (the first is the
baseline of the ratios; see ``slak_mm/benchmark/model.py``)::

    python tools/benchmark.py model CONFIG --variants torch fft default \
        deploy [--whole-model] [--backward] [--amp bf16] [--batch 1] \
        [--shape 512 512] [--rounds 5] [--out model.json]
    python tools/benchmark.py model CONFIG --variants timm:convnext_tiny \
        default --backward --amp bf16 --batch 8

Variants and implementations are timed interleaved (``--rounds`` rounds,
medians), so that load from other processes hits them alike. Without CUDA
everything runs on the CPU (absolute times there are indicative only;
compare ratios).
"""
import argparse

try:  # the `op` benchmark runs without OpenMMLab
    from mmengine.config import DictAction
except ModuleNotFoundError:
    DictAction = None


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='what', required=True)
    op = sub.add_parser('op', help='branch convs vs nn.Conv2d per stage')
    op.add_argument(
        '--dtype',
        nargs='+',
        default=['fp32'],
        choices=['fp32', 'fp16', 'bf16'])
    op.add_argument('--batch', type=int, default=8)
    op.add_argument(
        '--shape',
        '--size',
        type=int,
        nargs='+',
        default=[512],
        help='input H W, or one side (stage maps are /4 ... /32); as '
        '`model --shape` (--size is the old name)')
    op.add_argument('--stages', type=int, nargs='+', default=[0, 1, 2, 3])
    op.add_argument(
        '--impls',
        nargs='+',
        choices=['torch', 'fft', 'triton'],
        help='implementations to time besides auto (default: all available)')
    model = sub.add_parser('model', help="a config's backbone or model")
    model.add_argument('config')
    model.add_argument('--variants', nargs='+', default=['default'])
    model.add_argument('--whole-model', action='store_true')
    model.add_argument('--batch', type=int, default=1)
    model.add_argument('--shape', type=int, nargs=2, default=[512, 512])
    model.add_argument('--amp', choices=['bf16', 'fp16'])
    model.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    for p in (op, model):
        p.add_argument(
            '--backward',
            action='store_true',
            help='forward + backward instead of forward')
        p.add_argument(
            '--device', help='cuda or cpu (default: cuda if '
            'available)')
        p.add_argument(
            '--min-run-time',
            type=float,
            default=0.2,
            help='seconds per timed block of calls (at least one call)')
        p.add_argument(
            '--rounds',
            type=int,
            default=5,
            help='interleaved timing rounds (the median is reported)')
        p.add_argument('--out', help='write the results as JSON here')
    return parser.parse_args()


def run_op(args, device):
    from slak_mm.benchmark.op import benchmark_stage, slak_stage_shapes
    if len(args.shape) not in (1, 2):
        raise SystemExit('error: --shape takes H W or one side')
    shapes = slak_stage_shapes(args.shape[0] if len(args.shape) ==
                               1 else tuple(args.shape))
    rows = []
    for dtype in args.dtype:
        for stage in args.stages:
            r = benchmark_stage(
                **shapes[stage],
                batch=args.batch,
                dtype=dtype,
                backward=args.backward,
                device=device,
                impls=args.impls,
                rounds=args.rounds,
                min_round_time=args.min_run_time)
            if not rows or rows[-1]['dtype'] != dtype:
                names = list(r['ms'])
                print(f'{"C":>5} {"HxW":>8} {"M":>3} {"dtype":>5} '
                      f'{"mode":>7} ' + ' '.join(f'{n + " ms":>10}'
                                                 for n in names) +
                      f' {"auto chose":>10} {"best":>6} {"torch/auto":>10}'
                      f' {"auto/best":>9} {"rel.diff":>8}')
            print(f'{r["channels"]:>5} {r["height"]:>4}x{r["width"]:<3} '
                  f'{r["kernel"]:>3} {dtype:>5} {r["mode"]:>7} ' +
                  ' '.join(f'{r["ms"][n]:>10.2f}' for n in names) +
                  f' {r["auto_impl"]:>10} {r["best_impl"]:>6} '
                  f'{r["speedup"]:>9.2f}x {r["auto_vs_best"]:>8.2f}x '
                  f'{max(r["max_rel_diff"].values()):>8.1e}')
            rows.append(r)
    for dtype in args.dtype:
        part = [r for r in rows if r['dtype'] == dtype]
        total = {n: sum(r['ms'][n] for r in part) for n in part[0]['ms']}
        best = sum(r['ms'][r['best_impl']] for r in part)
        speedup = total['torch'] / total['auto']
        print(f'total {dtype}: ' + ', '.join(f'{n} {t:.1f} ms'
                                             for n, t in total.items()) +
              f', best-of {best:.1f} ms; auto is {speedup:.2f}x faster than '
              f'torch, {total["auto"] / best:.2f}x the best-of')
    return rows


def run_model(args, device):
    from slak_mm.benchmark.model import benchmark_model
    from slak_mm.config import load_config
    cfg = load_config(args.config, cfg_options=args.cfg_options)
    rows = benchmark_model(cfg, args.variants, args.whole_model, args.backward,
                           args.batch, tuple(args.shape), device, args.amp,
                           args.min_run_time, args.rounds)
    print(f'{args.config}: {rows[0]["part"]}, {rows[0]["mode"]}, batch '
          f'{args.batch}, {args.shape[0]}x{args.shape[1]}, {device}'
          f'{", " + args.amp if args.amp else ""}')
    for r in rows:
        chose = ', '.join(f'stage {k}: {v}' for k, v in r['auto_impl'].items())
        print(f'  {r["variant"]:<24} {r["ms"]:>10.2f} ms   '
              f'{r["ratio_to_first"]:>6.3f} x {rows[0]["variant"]}'
              f'{"   (" + chose + ")" if chose else ""}')
    return rows


def main():
    args = parse_args()
    import torch

    from slak_mm.benchmark.timing import environment
    from slak_mm.fileio import check_output_path, write_json_atomic
    if args.out:  # before the minutes of timing
        check_output_path(args.out, dict(config=getattr(args, 'config', None)))
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    rows = run_op(args, device) if args.what == 'op' else run_model(
        args, device)
    if args.out:
        write_json_atomic(
            dict(command=vars(args), environment=environment(), results=rows),
            args.out)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    from slak_mm.fileio import WriteFailedError  # plain Python: no mm
    try:
        main()
    except WriteFailedError as err:  # the --out file: one line
        raise SystemExit(f'error: {err}') from None
