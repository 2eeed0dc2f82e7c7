# Demo: Faster R-CNN + FPN with a small SLaK (kernels 13/11/9/7, short side
# 3) trained from scratch on the synthetic VOC-layout data
# (tools/generate_synthetic_data.py --datasets voc) in a few minutes on a
# CPU, then evaluated (VOC mAP) on its VOC2007 test split. Same model family,
# dataset layout, optimizer constructor and metric as
# faster_rcnn_slak_t_fpn_voc0712.py, scaled down for 160x160 images: BN
# instead of SyncBN, 32-channel FPN/heads, smaller anchors (scale 4: 16-256
# px, the synthetic objects are 20-90 px), fewer sampled anchors/proposals.
data_root = 'data/synthetic/VOCdevkit'
_base_ = [
    '../_base_/models/faster_rcnn_slak_fpn.py',
    '../_base_/datasets/voc0712.py', '../_base_/default_runtime_det.py',
    '../_base_/schedules/det_adamw_3x.py'
]
img_scale = (160, 160)
max_epochs = 24
warmup_iters = 50
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 1, 1], dims=[16, 32, 64, 128]),
        kernel_size=(13, 11, 9, 7),
        small_kernel=3,
        width_factor=1.0,
        drop_path_rate=0.0,
        norm_cfg=norm_cfg),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    rpn_head=dict(
        in_channels=32,
        feat_channels=32,
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64, num_classes=20)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))

backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
# The synthetic objects are 20-90 px: keep them all (mmdet's VOC config
# ignores boxes under 32 px).
filter_cfg = dict(filter_empty_gt=True, min_size=32, bbox_min_size=4)
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(datasets=[
        dict(
            type='VOCDataset',
            data_root=data_root,
            ann_file='VOC2007/ImageSets/Main/trainval.txt',
            data_prefix=dict(sub_data_root='VOC2007/'),
            filter_cfg=filter_cfg,
            pipeline=train_pipeline),
        dict(
            type='VOCDataset',
            data_root=data_root,
            ann_file='VOC2012/ImageSets/Main/trainval.txt',
            data_prefix=dict(sub_data_root='VOC2012/'),
            filter_cfg=filter_cfg,
            pipeline=train_pipeline)
    ]))
val_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# From scratch: AdamW at 1e-3 with a mild layer-wise decay (0.9), short
# warm-up, lr x0.1 for the last epochs; evaluate and save once, at the end.
optim_wrapper = dict(
    optimizer=dict(lr=1e-3, weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.9))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.001,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[max_epochs - 2],
        gamma=0.1)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
log_processor = dict(window_size=10)
randomness = dict(seed=0)
