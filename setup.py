"""Install slak_mm: ``pip install -e .`` (see README for the mmcv build)."""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
#: Repository entries shipped as ``slak_mm/.mim/<name>``, where mmengine
#: (``_base_ = 'slak_mm::...'``) and mim (``mim train slak_mm CONFIG``)
#: look, as mmdet / mmseg ship theirs.
MIM_ENTRIES = ('configs', 'tools', 'model-index.yml')


class BuildPyWithMim(build_py):
    """``build_py`` that also adds :data:`MIM_ENTRIES` to the package, as
    mmdet's ``add_mim_extension``: copied into the build folder for a wheel
    (the checkout is left as it is), symlinked into the checkout for an
    editable install (edits to ``configs/`` show at once)."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):  # pip install -e .
            self._add_mim(osp.join(HERE, 'slak_mm', '.mim'), link=True)
        else:
            self._add_mim(
                osp.join(self.build_lib, 'slak_mm', '.mim'), link=False)

    @staticmethod
    def _add_mim(mim_dir, link):
        os.makedirs(mim_dir, exist_ok=True)
        for name in MIM_ENTRIES:
            src, dst = osp.join(HERE, name), osp.join(mim_dir, name)
            if osp.islink(dst) or osp.isfile(dst):
                os.remove(dst)
            elif osp.isdir(dst):
                shutil.rmtree(dst)
            if link:  # relative: the checkout may move
                os.symlink(osp.relpath(src, mim_dir), dst)
            elif osp.isdir(src):
                shutil.copytree(
                    src,
                    dst,
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
            else:
                shutil.copyfile(src, dst)


def read_requirements(name):
    with open(osp.join(HERE, 'requirements', name)) as f:
        return [
            line.strip() for line in f
            if line.strip() and not line.startswith('#')
        ]


def read_version():
    scope = {}
    with open(osp.join(HERE, 'slak_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='slak_mm',
    version=read_version(),
    description='SLaK (Sparse Large Kernel Network) backbones for '
    'mmsegmentation and mmdetection (OpenMMLab 2.x)',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='MIT',
    license_files=['LICENSE'],
    # the licence is the SPDX expression above (setuptools deprecates the
    # "License ::" classifiers)
    classifiers=[
        'Operating System :: POSIX :: Linux',
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    python_requires='>=3.10',
    packages=find_packages(include=['slak_mm', 'slak_mm.*']),
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        # tools/export_onnx.py
        'onnx': read_requirements('onnx.txt'),
        # SLaK in mmpretrain: ImageNet evaluation of the official weights
        'cls': read_requirements('cls.txt'),
    },
    cmdclass={'build_py': BuildPyWithMim},
    zip_safe=False,
)
