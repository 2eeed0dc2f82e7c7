# UperNet + SLaK-T (kernels 51/49/47/13, width x1.3) on ADE20K, 512x512,
# 160k iterations, 8 GPUs x 2 images. Official ImageNet-1K checkpoint:
checkpoint = 'checkpoints/SLaK_tiny_checkpoint.pth'
_base_ = [
    '_base_/models/upernet_slak.py', '_base_/datasets/ade20k.py',
    '_base_/default_runtime_seg.py', '_base_/schedules/seg_adamw_poly_160k.py'
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))
