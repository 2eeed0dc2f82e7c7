"""Self-check of the large-kernel convolutions on this machine::

    python -m slak_mm.selfcheck            # full: on a GPU, a few minutes
    python -m slak_mm.selfcheck --quick    # CPU / CI: small shapes

In one run, written to one JSON file (``--out``, default
``selfcheck.json``) and printed as tables:

- ``choices`` (:mod:`.choices`): what ``impl='auto'`` chooses per key, how
  long its first call stalled and the peak memory of the measurement;
- ``correctness`` (:mod:`.correctness`): every implementation available
  here against float64 ``F.conv2d``, forward and gradients, per shape,
  dtype, layout and op;
- ``speed`` (:mod:`.speed`): every implementation and ``auto`` side by
  side per SLaK-T stage, fwd and fwd+bwd;
- ``backbone`` (:mod:`.speed`): a SLaK-T training step against timm's
  ConvNeXt-T.

The choices run first, so that their stall includes Triton's compilation;
the run uses a temporary tuning cache and Triton cache (a cold start) and
ignores the ops' ``impl``, ``tune`` and ``max_tuned`` settings
(``$SLAK_MM_DWCONV_IMPL`` / ``_TUNE`` / ``_MAX_TUNED``). The exit
status is 1 when a check failed (a ``FAIL`` row names the implementation,
shape, dtype, layout and error) or a section raised, else 0.

Needs torch, and timm for the backbone step (Triton for its column); no
OpenMMLab package. The tables are this command's output, hence ``print``.
"""
import argparse
import contextlib
import os
import os.path as osp
import platform
import re
import sys
import tempfile
import time
import traceback
from typing import Dict, List, Optional, Sequence

import torch

from slak_mm import ops
from slak_mm.benchmark.timing import environment as bench_environment
from slak_mm.fileio import (UnsafeOutputError, check_output_path,
                            write_json_atomic)
from slak_mm.ops.registry import CANDIDATES
from slak_mm.ops.settings import DEFAULT_MAX_TUNED
from slak_mm.version import __version__
from .choices import choice_keys, measure_choices
from .correctness import check_case, correctness_cases, modes_for
from .speed import backbone_step, op_timings

__all__ = ['SECTIONS', 'environment', 'main', 'run_sections']

#: The parts of a run, in the order they run.
SECTIONS = ('choices', 'correctness', 'speed', 'backbone')


def _driver() -> Optional[str]:
    try:
        with open('/proc/driver/nvidia/version') as f:
            match = re.search(r'Kernel Module\s+(\S+)', f.read())
    except OSError:
        return None
    return match.group(1) if match else None


def environment(device: torch.device) -> Dict[str, Optional[str]]:
    """What the results depend on.

    Args:
        device (torch.device): The device checked.

    Returns:
        dict: :func:`slak_mm.benchmark.timing.environment` (torch, python,
        cpu, threads, cuda, gpu, cudnn, triton) plus the NVIDIA driver,
        the GPU's compute capability and memory, timm, slak_mm, the CPU
        count and the platform.
    """
    info = bench_environment()
    info.update(
        driver=_driver(),
        timm=None,
        slak_mm=__version__,
        cpu_count=str(os.cpu_count()),
        platform=platform.platform(),
        device=str(device))
    try:
        import timm
        info['timm'] = timm.__version__
    except ImportError:
        pass
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        info.update(
            capability=f'{props.major}.{props.minor}',
            gpu_memory_gib=f'{props.total_memory / 2**30:.1f}')
    return info


@contextlib.contextmanager
def _triton_cache(folder: str):
    """Triton compiles into ``folder`` within the block (Triton's own
    setting, ``triton.knobs.cache.dir``; nothing where triton is not
    registered)."""
    if 'triton' not in CANDIDATES:
        yield
        return
    from triton import knobs
    with knobs.cache.scope():
        knobs.cache.dir = folder
        yield


@contextlib.contextmanager
def _isolated(folder: str):
    """A fresh tuning cache and Triton cache in ``folder``, no forced or
    limited dispatch; the ops' settings and the dispatcher's memory as they
    were afterwards."""
    settings = ops.use(
        cache=osp.join(folder, 'dwconv_tune.json'),
        impl='auto',
        tune=True,
        max_tuned=DEFAULT_MAX_TUNED)
    with settings, _triton_cache(osp.join(folder, 'triton')), \
            torch.random.fork_rng():
        ops.clear_memory()
        try:
            yield
        finally:
            ops.clear_memory()


def _notes(quick: bool, device: torch.device) -> List[str]:
    notes = []
    if 'triton' not in CANDIDATES:
        notes.append('Triton is not installed (or failed to import): no '
                     'triton column.')
    elif device.type == 'cpu':
        notes.append('Triton ran only under its interpreter '
                     '(TRITON_INTERPRET=1), on one tiny shape, fp32: the '
                     "interpreter's bf16 dot is broken (the kernels upcast "
                     'bf16 to fp32 there), so the bf16/fp16 kernels are '
                     'proven only by the full self-check on a GPU.')
    if device.type == 'cpu':
        notes.append('Peak memory of the tuning is measured on CUDA only.')
    if device.type == 'cpu' and not quick:
        notes.append('The full self-check on the CPU takes long (float64 '
                     'references at detection sizes); --quick is the CPU '
                     'check.')
    if quick:
        notes.append('--quick: small shapes and models; its timings and '
                     'ratio show only that the code runs.')
    return notes


def _note(report: dict, note: str) -> None:
    report['notes'].append(note)
    print(f'note: {note}', flush=True)


def _run_section(section: str, quick: bool, device: torch.device):
    if section == 'choices':
        return measure_choices(choice_keys(quick), device)
    if section == 'correctness':
        modes = modes_for(device.type, quick)
        return [
            row for case in correctness_cases(quick)
            for row in check_case(case, modes, device)
        ]
    if section == 'speed':
        return op_timings(quick, device)
    return backbone_step(quick, device)


def run_sections(sections: Sequence[str], quick: bool, device: torch.device,
                 report: dict, out: str) -> None:
    """Run ``sections`` into ``report``, writing it to ``out`` after each
    (a run cut short still leaves what it measured). A section that raises
    (e.g. out of memory in the backbone step) is recorded in
    ``report['errors']`` with its traceback on stderr, and the next runs.

    Args:
        sections (Sequence[str]): Names of :data:`SECTIONS`.
        quick (bool): The CPU / CI sets.
        device (torch.device): Where to run.
        report (dict): Filled in: one entry per section, ``seconds``
            (section -> duration) and ``errors`` (section -> error).
        out (str): The JSON file.
    """
    for section in SECTIONS:
        if section not in sections:
            continue
        print(f'[selfcheck] {section} ...', flush=True)
        start = time.perf_counter()
        try:
            report[section] = _run_section(section, quick, device)
        except Exception as e:  # the other sections still say something
            traceback.print_exc()
            report['errors'][section] = f'{type(e).__name__}: {e}'
        report['seconds'][section] = time.perf_counter() - start
        if section == 'choices' and not any(r['times']
                                            for r in report.get(section, [])):
            _note(
                report, 'No key was measured (heuristic choices only), so '
                "no candidates' times; the speed section times every "
                'implementation on its shapes.')
        write_json_atomic(report, out, indent=1)


def _table(title: str, header: Sequence[str], rows: List[Sequence]) -> None:
    cells = [[str(v) for v in row] for row in [header] + rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f'\n{title}')
    for row in cells:
        print('  '.join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _ms(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.2f}'


def _print_choices(rows: List[dict]) -> None:
    table = []
    for r in rows:
        times = ' '.join(f'{name}={t * 1e3:.2f}'
                         for name, t in (r['times'] or {}).items())
        table.append([
            r['op'], r['shape'], r['dtype'], r['mode'], r['choice'], r['how'],
            _ms(r['first_call_ms']),
            _ms(r['next_call_ms']),
            _ms(r['peak_mib']), times or '-'
        ])
    _table('What auto chooses (first call = the stall of tuning)', [
        'op', 'shape', 'dtype', 'mode', 'choice', 'how', 'first ms', 'next ms',
        'peak MiB', 'candidates ms'
    ], table)
    stall = sum(r['first_call_ms'] for r in rows) / 1e3
    print(f'total first-call stall: {stall:.2f} s')


def _print_correctness(rows: List[dict]) -> None:
    groups = {}
    for r in rows:
        groups.setdefault((r['impl'], r['dtype']), []).append(r)
    table = []
    for (impl, dtype), group in groups.items():
        ratios = [
            max(r['out'], r['grad_x'], r['grad_w']) / r['tol'] for r in group
            if r['out'] is not None
        ]
        fails = sum(r['status'] == 'FAIL' for r in group)
        worst = f'{max(ratios):.3f}' if ratios else '-'
        table.append([impl, dtype, len(group), fails, worst])
    _table('Correctness against float64 (worst error / tolerance)',
           ['impl', 'dtype', 'runs', 'FAIL', 'worst'], table)
    failed = [[
        r['impl'], r['op'], r['shape'], r['dtype'], r['layout'], r['error']
    ] for r in rows if r['status'] == 'FAIL']
    if failed:
        _table('FAIL', ['impl', 'op', 'shape', 'dtype', 'layout', 'error'],
               failed)


def _print_speed(rows: List[dict]) -> None:
    impls = sorted({name for r in rows for name in r['ms']} - {'auto'})
    table = []
    for r in rows:
        shape = f"{r['batch']}x{r['channels']}x{r['height']}x{r['width']}"
        table.append([f"{shape} k{r['kernel']}", r['dtype'], r['mode']] +
                     [_ms(r['ms'].get(name)) for name in impls] + [
                         f"{_ms(r['ms']['auto'])} ({r['auto_impl']})",
                         f"{r['speedup']:.2f}x"
                     ])
    _table('Op timings, ms (three branch convs; auto: its choice)',
           ['shape', 'dtype', 'mode'] + impls + ['auto', 'torch/auto'], table)


def _print_report(report: dict) -> None:
    env = report['environment']
    print(f"slak_mm {env['slak_mm']} self-check ({report['run']['mode']}) "
          f"on {env['gpu'] or env['cpu']}: torch {env['torch']}, CUDA "
          f"{env['cuda']}, cuDNN {env['cudnn']}, driver {env['driver']}, "
          f"Triton {env['triton']}, timm {env['timm']}, "
          f"{env['threads']} threads")
    if 'choices' in report:
        _print_choices(report['choices'])
    if 'correctness' in report:
        _print_correctness(report['correctness'])
    if 'speed' in report:
        _print_speed(report['speed'])
    if 'backbone' in report:
        b = report['backbone']
        print(f"\nTraining step, batch {b['batch']}, {b['size']}x{b['size']}"
              f", amp {b['amp']}: {b['models']['slak']} "
              f"{b['ms']['slak']:.1f} ms, {b['models']['convnext']} "
              f"{b['ms']['convnext']:.1f} ms, ratio {b['ratio']:.2f}x "
              f"(auto per stage: {b['auto_impl']})")


def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='python -m slak_mm.selfcheck',
        description='Are the large-kernel convs correct here, which one '
        'does auto choose, and how fast are they?')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='small shapes, fp32/bf16 (the CPU / CI check)')
    parser.add_argument(
        '--out',
        default='selfcheck.json',
        help='the JSON report (default: selfcheck.json)')
    parser.add_argument(
        '--device', help='cuda or cpu (default: cuda if available)')
    parser.add_argument(
        '--sections',
        nargs='+',
        choices=SECTIONS,
        default=list(SECTIONS),
        help='the parts to run (default: all)')
    args = parser.parse_args(argv)
    args.device = args.device or ('cuda'
                                  if torch.cuda.is_available() else 'cpu')
    if args.device not in ('cuda', 'cpu'):
        parser.error(f'--device {args.device}: choose cuda or cpu')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available to torch; '
                     'use --device cpu (with --quick)')
    try:  # before minutes of checks, not at their first report
        check_output_path(args.out)
    except UnsafeOutputError as err:
        parser.error(str(err))
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the self-check.

    Args:
        argv (Sequence[str], optional): The arguments (default:
            ``sys.argv[1:]``).

    Returns:
        int: 1 if a correctness check failed or a section raised, else 0.
    """
    args = _parse_args(argv)
    device = torch.device(args.device)
    report = dict(
        run=dict(
            mode='quick' if args.quick else 'full',
            argv=list(sys.argv[1:] if argv is None else argv)),
        environment=environment(device),
        notes=[],
        seconds={},
        errors={})
    for note in _notes(args.quick, device):
        _note(report, note)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, _isolated(folder):
        run_sections(args.sections, args.quick, device, report, args.out)
    failed = sum(r['status'] == 'FAIL' for r in report.get('correctness', []))
    report['seconds']['total'] = time.perf_counter() - start
    report['failed'] = failed
    write_json_atomic(report, args.out, indent=1)
    _print_report(report)
    checked = len(report.get('correctness', []))
    for section, error in report['errors'].items():
        print(f'\nERROR in {section}: {error}')
    bad = failed or report['errors']
    print(f"\n{'FAIL' if bad else 'PASS'}: {failed} of {checked} checks "
          f"failed, {len(report['errors'])} sections raised; "
          f"{report['seconds']['total']:.1f} s; report: {args.out}")
    return 1 if bad else 0
