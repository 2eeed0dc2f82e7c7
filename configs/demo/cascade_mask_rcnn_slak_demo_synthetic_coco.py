# Demo: Cascade Mask R-CNN + FPN with a small SLaK (kernels 13/11/9/7, short
# side 3) trained from scratch on the synthetic COCO-layout data
# (tools/generate_synthetic_data.py --datasets coco) in a few minutes on a
# CPU, then evaluated (COCO bbox and segm AP) on its val2017 split. Same
# model family (three 4conv1fc GIoU box heads, FCN mask head), dataset
# layout, optimizer constructor and metric as
# cascade_mask_rcnn_slak_t_fpn_3x_coco.py, scaled down for 160x160 images: BN
# instead of SyncBN, 32-channel FPN/heads, smaller anchors (scale 4: 16-256
# px, the synthetic objects are 20-90 px), fewer sampled anchors/proposals,
# single-scale training. Schedule and runtime: _base_/det_demo_runtime.py.
data_root = 'data/synthetic/coco'
_base_ = [
    '../_base_/models/cascade_mask_rcnn_slak_fpn.py',
    '../_base_/datasets/coco_instance.py', '../_base_/det_demo_runtime.py'
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
        # the base's three cascade box heads, narrower and with BN
        bbox_head=[
            dict(
                head,
                in_channels=32,
                conv_out_channels=32,
                fc_out_channels=64,
                norm_cfg=norm_cfg) for head in _base_.model.roi_head.bbox_head
        ],
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(in_channels=32, conv_out_channels=32)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=500, max_per_img=100),
        # the base's three cascade stages, sampling 64 RoIs each
        rcnn=[
            dict(stage, sampler=dict(stage.sampler, num=64))
            for stage in _base_.model.train_cfg.rcnn
        ]),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))

# the pipelines of _base_/datasets/coco_instance.py, resized to img_scale
train_pipeline = [
    dict(t, scale=img_scale) if t.type == 'Resize' else t
    for t in _base_.train_pipeline
]
test_pipeline = [
    dict(t, scale=img_scale) if t.type == 'Resize' else t
    for t in _base_.test_pipeline
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root +
                     '/annotations/instances_val2017.json')
test_evaluator = val_evaluator
