"""Install slak_mm: ``pip install -e .`` (see README for the mmcv build)."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


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
    zip_safe=False,
)
