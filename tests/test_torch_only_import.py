"""slak_mm.ops and slak_mm.sparse work where OpenMMLab is not installed (a
bare GPU box with torch and Triton), so the kernels can be benchmarked
there."""
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

HIDE_MM = '''
import importlib.abc, sys
class HideOpenMMLab(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmengine', 'mmcv', 'mmdet', 'mmseg'):
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
sys.meta_path.insert(0, HideOpenMMLab())
'''


def run_without_mm(code):
    return subprocess.run([sys.executable, '-c', HIDE_MM + code],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300)


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


def test_the_hiding_is_real():
    proc = run_without_mm('import slak_mm.models')
    assert proc.returncode != 0
    assert "No module named 'mm" in proc.stderr
