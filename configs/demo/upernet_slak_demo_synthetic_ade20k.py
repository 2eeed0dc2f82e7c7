# Demo: UperNet + a small SLaK (kernels 13/11/9/7) trained from scratch on the
# synthetic ADE20K-layout data (tools/generate_synthetic_data.py) in a few
# minutes on a CPU. Same model family and pipeline as upernet_slak_t_ade20k.py.
data_root = 'data/synthetic/ADEChallengeData2016'
_base_ = [
    '../_base_/models/upernet_slak.py', '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/seg_adamw_poly_160k.py'
]
crop_size = (128, 128)
img_scale = (256, 128)
max_iters = 300
warmup_iters = 20
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 2, 1], dims=[24, 48, 96, 192]),
        kernel_size=(13, 11, 9, 7),
        small_kernel=3,
        width_factor=1.0,
        drop_path_rate=0.0,
        branch_norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=[24, 48, 96, 192], channels=64, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=96, channels=32, norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=img_scale,
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(lr=2e-3, weight_decay=0.01),
    paramwise_cfg=dict(decay_rate=1.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.0,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
custom_hooks = [dict(type='SparseMaskHook', interval=50)]
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
