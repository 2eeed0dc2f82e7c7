# Demo: an image classifier with a small SLaK (kernels 13/11/9/7) trained
# from scratch on the synthetic ImageNet-style folder
# (tools/generate_synthetic_data.py --datasets imagenet: 6 classes, 96 px)
# at 64 px on a CPU, then tested (accuracy/top1 in test_metrics.json). Same
# classifier, data layout and schedule shape as
# configs/imagenet/slak_t_finetune_imagefolder.py.
data_root = 'data/synthetic/imagenet'
img_size = 64
num_classes = 6
_base_ = [
    '../_base_/models/slak_in1k_cls.py', '../_base_/datasets/imagenet.py',
    '../_base_/default_runtime_cls.py',
    '../_base_/schedules/cls_adamw_finetune.py'
]
model = dict(
    data_preprocessor=dict(num_classes=num_classes),
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 2, 1], dims=[24, 48, 96, 192]),
        kernel_size=(13, 11, 9, 7),
        small_kernel=3,
        width_factor=1.0),
    head=dict(num_classes=num_classes, in_channels=192, topk=(1, 5)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
default_hooks = dict(logger=dict(interval=5))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
