"""docs/compatibility.md from the sweep's results: the summary, one table
per framework (family | config | result | what a user sets), the failures
grouped by cause, what was ours and is fixed, and the families not swept.
"""
import platform
from collections import OrderedDict
from typing import Dict, List, Optional

from .causes import FAMILY, FIXED, classify, package_version
from .families import PACKAGES
from .result import Result
from .trial import MAX_FIXES

__all__ = ['render_report', 'summary']

_NOT_SWEPT = 'no image classification config'

_HOW = f'''\
How a row is made (`slak_mm/compat/`):

- **Families** are the folders of each framework's packaged configs
  (`<package>/.mim/configs/*`, `_base_` aside), read from the installed
  packages. mmpretrain's count where one of their configs is an image
  classifier.
- **The config** of a family is the first by path that loads and that the
  sweep can run as written (its datasets are ones the synthetic generator
  writes: COCO instances / stuff / panoptic, ADE20K, VOC, ImageNet; its
  model has a `backbone`); else the first with a `backbone`; else the first
  that loads; the re-parameterised inference forms (`deploy/`) last.
- **The user's config** is the documented recipe
  ([your_config.md](your_config.md)), written to a file:
  `_base_ = [STOCK, 'slak_mm::_base_/slak_t_drop_in.py']`, the backbone
  swapped (`backbone=dict(_delete_=True, **_base_.slak_t)`), the input
  channels of what reads the backbone (the neck's; without a neck the
  heads'), `pretrained=None` where the segmentor has one. Then the
  pre-run check (`slak_mm.config.backbone_neck_problems`) is asked; while
  it refuses with a fix, its first fix is applied (at most {MAX_FIXES}).
  *What a user sets* lists both: the recipe's lines and the fixes.
- **Scaled down for the CPU** (not a user's change): SLaK-T's output widths
  with one block per stage and 7 x 7 kernels, no pretrained weights
  (nothing is downloaded), float32 (a mixed-precision wrapper becomes
  `OptimWrapper`), images at 128 px (mmdet) / 64 px (mmseg, mmpretrain),
  batches of 2 (6 for mmpretrain), one training iteration, then
  `slak_mm.apis.test` of the checkpoint on one image. Datasets the
  generator does not write are replaced by the synthetic one of the task
  (COCO, ADE20K, ImageNet folders) with the replaced dataset's number of
  classes; the config column says where. Fast R-CNN's proposal files
  are written from the boxes (they are pickles: `SLAK_MM_UNSAFE_LOAD=1`
  reads them, as a user sets it).
- **Each family runs in its own process** (forked, 2 at a time), killed
  past its time limit, its address space limited (`RLIMIT_AS`), so a hang
  or a crash of one config does not stop the sweep.
- **Result**: *pass* (trained one step and tested), *n/a* (a CNN backbone
  makes no sense there: the model is built around its own backbone, reads
  a ViT's tokens, tracks videos with another family's detector, needs a
  language model from the hub, or its config trains nothing; why), or
  *fail* with its cause (below): *upstream* (a framework's bug or limit,
  with its version), *environment* (a package the frameworks do not
  install), *ours, left* (not fixed yet).
'''


def summary(results: List[Result]) -> Dict[str, dict]:
    """Counts per framework and overall.

    Args:
        results (list[Result]): The sweep's rows.

    Returns:
        dict: ``{package or 'all': dict(families, passed, na, failed)}``
        (families not swept left out).
    """
    counts: Dict[str, dict] = OrderedDict()
    for key in (*PACKAGES, 'all'):
        counts[key] = dict(families=0, passed=0, na=0, failed=0)
    for result in results:
        if result.message == _NOT_SWEPT:
            continue
        for key in (result.family.split('/')[0], 'all'):
            if key not in counts:
                continue
            row = counts[key]
            row['families'] += 1
            row['passed'] += result.outcome == 'pass'
            row['na'] += result.outcome == 'n/a'
            row['failed'] += result.outcome == 'fail'
    return OrderedDict((k, v) for k, v in counts.items() if v['families'])


def _percent(part: int, whole: int) -> str:
    return f'{100 * part / whole:.0f}%' if whole else '-'


def _cell(text: str) -> str:
    return text.replace('|', '\\|').replace('\n', ' ')


def _code(text: str, limit: int = 200) -> str:
    """``text`` as inline code (doubled backticks where it has one),
    cut at ``limit`` characters."""
    text = _cell(text if len(text) <= limit else text[:limit - 3] + '...')
    return f'`` {text} ``' if '`' in text else f'`{text}`'


def _result_cell(result: Result, anchors: Dict[str, str]) -> str:
    if result.outcome == 'pass':
        return 'pass'
    cause = classify(result) if result.stage else None
    if result.outcome == 'n/a':
        return f'n/a: {_cell(cause.explain if cause else result.message)}'
    title = cause.title if cause else 'unclassified'
    return f'fail ({result.stage}): [{title}](#{anchors[title]})'


def _anchor(title: str) -> str:
    keep = ''.join(c for c in title.lower() if c.isalnum() or c in ' -_')
    return keep.replace(' ', '-')


def render_report(results: List[Result],
                  seconds: Optional[float] = None,
                  jobs: int = 2) -> str:
    """The markdown of docs/compatibility.md.

    Args:
        results (list[Result]): The sweep's rows, in table order.
        seconds (float, optional): The sweep's wall time, for the header.
        jobs (int): Trials run at once.

    Returns:
        str: The page.
    """
    failed = [r for r in results if r.outcome == 'fail']
    groups: Dict[str, List[Result]] = OrderedDict()
    for result in failed:
        cause = classify(result)
        groups.setdefault(cause.title if cause else 'unclassified',
                          []).append(result)
    anchors = {title: _anchor(title) for title in groups}
    versions = ', '.join(
        package_version(m)
        for m in ('mmdet', 'mmseg', 'mmpretrain', 'mmcv', 'mmengine', 'torch'))
    lines = [
        '# SLaK in every packaged model family', '',
        '<!-- Generated by `python tools/compat_sweep.py` (`make compat`): '
        'edit slak_mm/compat/, not this file. -->', '',
        f'Installed: {versions}; Python {platform.python_version()}, CPU.' +
        (f' The sweep took {seconds / 60:.0f} min with {jobs} processes.'
         if seconds else ''), ''
    ]
    counts = summary(results)
    lines += [
        '| framework | families | pass | n/a | fail | pass / all | '
        'pass / applicable |', '|---|---|---|---|---|---|---|'
    ]
    for key, row in counts.items():
        applicable = row['families'] - row['na']
        lines.append(
            f'| {key} | {row["families"]} | {row["passed"]} | {row["na"]} | '
            f'{row["failed"]} | {_percent(row["passed"], row["families"])} | '
            f'{_percent(row["passed"], applicable)} |')
    lines += ['', _HOW]
    for package in PACKAGES:
        rows = [
            r for r in results
            if r.family.split('/')[0] == package and r.message != _NOT_SWEPT
        ]
        if not rows:
            continue
        lines += [
            f'## {package}', '',
            '| family | config | result | what a user sets |',
            '|---|---|---|---|'
        ]
        for r in rows:
            config = f'`{r.config.split("/", 1)[-1]}`' if r.config else ''
            if r.data:
                config += f' (data: {_cell(r.data)})'
            sets = '; '.join(_code(s, 400) for s in r.user_sets)
            lines.append(f'| {r.family.split("/", 1)[1]} | {config} | '
                         f'{_result_cell(r, anchors)} | {sets} |')
        lines.append('')
    if groups:
        lines += ['## Failures by cause', '']
    for title, rows in groups.items():
        cause = classify(rows[0])
        packages = sorted({
            r.family.split('/')[0]
            if cause.package == FAMILY else cause.package
            for r in rows
        }) if cause and cause.package else []
        kind = {'ours': 'ours, left'}.get(cause.kind, cause.kind) \
            if cause else 'not classified yet'
        where = ', '.join([kind] + [package_version(p) for p in packages])
        lines += [
            f'### {title}', '', f'*{where}.* ' +
            (cause.explain + '.' if cause else
             'No known cause matches these messages: look into them '
             '(slak_mm/compat/causes.py).'), ''
        ]
        for r in rows:
            at = f' ({_code(r.where)})' if r.where else ''
            lines.append(f'- {r.family}: {_code(r.message)}{at}')
        lines.append('')
    lines += [
        '## Ours, fixed', '',
        'Failures the sweep found in slak_mm, and the test that keeps each '
        'fixed:', ''
    ]
    lines += [f'- {what}: {fix} (`{test}`).' for what, fix, test in FIXED]
    skipped = [r.family for r in results if r.message == _NOT_SWEPT]
    if skipped:
        lines += [
            '', '## Not swept', '',
            'mmpretrain folders without an image classification config '
            '(self-supervised pre-training, retrieval, multimodal models): ' +
            ', '.join(s.split('/', 1)[1] for s in skipped) + '.'
        ]
    return '\n'.join(lines) + '\n'
