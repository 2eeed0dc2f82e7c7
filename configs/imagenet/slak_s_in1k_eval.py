# SLaK-S (kernels 51/49/47/13, width x1.3) ImageNet-1K top-1/top-5 of an
# official checkpoint at 224 px (paper: 83.8 top-1):
#   python tools/test_imagenet.py configs/imagenet/slak_s_in1k_eval.py [CKPT]
checkpoint = 'checkpoints/SLaK_small_checkpoint.pth'
_base_ = [
    '../_base_/models/slak_in1k_cls.py', '../_base_/datasets/imagenet_val.py',
    '../_base_/default_runtime_cls.py'
]
model = dict(backbone=dict(arch='small'), head=dict(in_channels=998))
