"""slak_mm.ops and slak_mm.sparse work where OpenMMLab is not installed (a
bare GPU box with torch and Triton), so the kernels can be benchmarked
there; ``import slak_mm`` works with only one of mmseg / mmdet."""
import pytest

from tests.common import OPENMMLAB, hide_modules
from tests.tool_runner import run_python


def run_without_mm(code, hidden=OPENMMLAB):
    """``code`` in a new interpreter where ``hidden`` cannot be imported."""
    return run_python(hide_modules(hidden) + code, timeout=300)


def test_ops_and_sparse_import_without_openmmlab():
    proc = run_without_mm('''
import sys, torch
import slak_mm.ops as ops, slak_mm.sparse as sparse
x = torch.randn(1, 2, 8, 8)
y = ops.depthwise_conv2d(x, torch.randn(2, 1, 7, 3))
assert y.shape == x.shape
assert not any(m.split('.')[0] in ('mmengine', 'mmcv', 'mmseg', 'mmdet')
               for m in sys.modules)
print('ok')
''')
    assert proc.returncode == 0 and 'ok' in proc.stdout, proc.stderr[-2000:]


def test_selfcheck_runs_without_openmmlab(tmp_path):
    out = tmp_path / 'selfcheck.json'
    proc = run_without_mm(f'''
import sys
from slak_mm.selfcheck import main
code = main(['--quick', '--device', 'cpu', '--sections', 'choices',
             '--out', {str(out)!r}])
assert code == 0, code
assert not any(m.split('.')[0] in {OPENMMLAB!r} for m in sys.modules)
print('ok')
''')
    assert proc.returncode == 0 and 'ok' in proc.stdout, proc.stderr[-2000:]
    assert out.exists()


def test_the_hiding_is_real():
    proc = run_without_mm('import slak_mm.models')
    assert proc.returncode != 0
    assert "No module named 'mm" in proc.stderr


@pytest.mark.parametrize('missing,present', [('mmdet', 'mmseg'),
                                             ('mmseg', 'mmdet')])
def test_one_framework_is_enough(missing, present):
    hidden = (missing, ) if missing == 'mmseg' else ('mmdet', 'mmpretrain')
    proc = run_without_mm(
        f'''
import sys, slak_mm
from {present}.registry import MODELS, HOOKS, OPTIM_WRAPPER_CONSTRUCTORS
assert MODELS.get('SLaK') is not None
assert HOOKS.get('SparseMaskHook') is not None
assert HOOKS.get('CheckpointLoadCheckHook') is not None
assert OPTIM_WRAPPER_CONSTRUCTORS.get(
    'SLaKLearningRateDecayOptimizerConstructor') is not None
assert '{missing}' not in sys.modules
print('ok')
''', hidden)
    assert proc.returncode == 0 and 'ok' in proc.stdout, proc.stderr[-2000:]


def test_no_framework_is_a_clear_error():
    proc = run_without_mm('import slak_mm.models',
                          ('mmdet', 'mmseg', 'mmpretrain'))
    assert proc.returncode != 0
    assert 'slak_mm needs mmsegmentation or mmdetection' in proc.stderr
