# Demo: Faster R-CNN + FPN with a small SLaK (kernels 13/11/9/7, short side
# 3) trained from scratch on the synthetic VOC-layout data
# (tools/generate_synthetic_data.py --datasets voc) in a few minutes on a
# CPU, then evaluated (VOC mAP) on its VOC2007 test split. Same model family,
# dataset layout, optimizer constructor and metric as
# faster_rcnn_slak_t_fpn_voc0712.py, scaled down for 160x160 images: BN
# instead of SyncBN, 32-channel FPN/heads, smaller anchors (scale 4: 16-256
# px, the synthetic objects are 20-90 px), fewer sampled anchors/proposals.
# Schedule and runtime: _base_/det_demo_runtime.py.
data_root = 'data/synthetic/VOCdevkit'
_base_ = [
    '../_base_/models/faster_rcnn_slak_fpn.py',
    '../_base_/datasets/voc0712.py', '../_base_/det_demo_runtime.py'
]
img_scale = (160, 160)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 1, 1], dims=[16, 32, 64, 128]),
        kernel_size=(13, 11, 9, 7),
        small_kernel=3,
        width_factor=1.0,
        drop_path_rate=0.0,
        branch_norm_cfg=norm_cfg),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    rpn_head=dict(
        in_channels=32, feat_channels=32, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64, num_classes=20)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))

# the pipelines of _base_/datasets/voc0712.py, resized to img_scale
train_pipeline = [
    dict(t, scale=img_scale) if t.type == 'Resize' else t
    for t in _base_.train_pipeline
]
test_pipeline = [
    dict(t, scale=img_scale) if t.type == 'Resize' else t
    for t in _base_.test_pipeline
]
tta_pipeline = [
    _base_.tta_pipeline[0],
    dict(
        _base_.tta_pipeline[1],
        transforms=[[dict(type='Resize', scale=img_scale, keep_ratio=True)],
                    *_base_.tta_pipeline[1].transforms[1:]])
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
            ann_file=f'{year}/ImageSets/Main/trainval.txt',
            data_prefix=dict(sub_data_root=f'{year}/'),
            filter_cfg=filter_cfg,
            pipeline=train_pipeline) for year in ('VOC2007', 'VOC2012')
    ]))
val_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
