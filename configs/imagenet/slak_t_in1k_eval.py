# SLaK-T (kernels 51/49/47/13, width x1.3) ImageNet-1K top-1/top-5 of an
# official checkpoint at 224 px (paper: 82.5 top-1):
#   python tools/test_imagenet.py configs/imagenet/slak_t_in1k_eval.py [CKPT]
checkpoint = 'checkpoints/SLaK_tiny_checkpoint.pth'
_base_ = [
    '../_base_/models/slak_in1k_cls.py', '../_base_/datasets/imagenet_val.py',
    '../_base_/default_runtime_cls.py'
]
model = dict(backbone=dict(arch='tiny'), head=dict(in_channels=998))
