"""What works where OpenMMLab is not installed (a bare GPU box with torch
and Triton, a timm project): ``import slak_mm``, the ops and sparsity, the
network through timm (an official file loaded safely, the official logits,
the stage maps) and the self-check; ``import slak_mm`` works with only one
of mmseg / mmdet."""
import pytest
import timm

import slak_mm  # noqa: F401  (registers the timm models)
from tests.common import OPENMMLAB, hide_modules
from tests.official_format import (SLAK_T_SHRUNK, model_shapes,
                                   write_official_checkpoint)
from tests.tool_runner import run_python


def run_without_mm(code, hidden=OPENMMLAB):
    """``code`` in a new interpreter where ``hidden`` cannot be imported."""
    return run_python(hide_modules(hidden) + code, timeout=300)


def test_slak_mm_and_its_timm_models_without_openmmlab(tmp_path):
    """``import slak_mm`` registers the timm models; an official file loads
    through timm's pretrained path and gives the official logits and stage
    maps; the ops and sparsity work; no OpenMMLab module was imported (and
    ``slak_mm.models``, which needs it, does not import)."""
    path = str(tmp_path / 'SLaK_tiny_checkpoint.pth')
    write_official_checkpoint(
        path, model_shapes(timm.create_model('slak_tiny', **SLAK_T_SHRUNK)))
    proc = run_without_mm(f'''
import sys, torch, timm
import slak_mm, slak_mm.ops as ops, slak_mm.sparse as sparse
from tests.common import rel_err
from tests.official_format import SLAK_T_SHRUNK, official_outputs
x = torch.randn(1, 2, 8, 8)
assert ops.depthwise_conv2d(x, torch.randn(2, 1, 7, 3)).shape == x.shape
model = timm.create_model('SLaK_tiny', pretrained=True, sparse=True,
                          pretrained_cfg_overlay=dict(file={path!r}),
                          **SLAK_T_SHRUNK).eval()
assert sparse.has_masks(model)
x = torch.randn(2, 3, 64, 64)
state = torch.load({path!r}, weights_only=False)['model']
logits, maps = official_outputs(state, x)
with torch.no_grad():
    assert rel_err(model(x), logits) < 1e-6
    feats = timm.create_model('slak_tiny', features_only=True,
                              pretrained=True,
                              pretrained_cfg_overlay=dict(file={path!r}),
                              **SLAK_T_SHRUNK).eval()
    errors = [rel_err(a, b) for a, b in zip(feats(x), maps)]
    assert max(errors) < 1e-6 and len(errors) == 4, errors
mm = sorted(m for m in sys.modules if m.split('.')[0] in {OPENMMLAB!r})
assert not mm, mm
try:  # the hiding is real
    import slak_mm.models
except ModuleNotFoundError as err:
    assert err.name.split('.')[0] in {OPENMMLAB!r}, err
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
