# Cascade Mask R-CNN + FPN + SLaK-T (kernels 51/49/47/13, width x1.3) on COCO
# 2017, the official SLaK setting: 3x schedule (36 epochs), multi-scale
# training (short side 480-800, with random crop, as ConvNeXt), 4conv1fc box
# heads with SyncBN and GIoU loss, AdamW lr 2e-4 with layer-wise decay 0.7,
# 8 GPUs x 2 images. Official ImageNet-1K checkpoint:
checkpoint = 'checkpoints/SLaK_tiny_checkpoint.pth'
_base_ = [
    '_base_/models/cascade_mask_rcnn_slak_fpn.py',
    '_base_/datasets/coco_instance.py', '_base_/default_runtime_det.py',
    '_base_/schedules/det_adamw_3x.py'
]
model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))

# augmentation strategy of DETR / Sparse R-CNN, used by ConvNeXt and SLaK
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[[
            dict(
                type='RandomChoiceResize',
                scales=[(480, 1333), (512, 1333), (544, 1333), (576, 1333),
                        (608, 1333), (640, 1333), (672, 1333), (704, 1333),
                        (736, 1333), (768, 1333), (800, 1333)],
                keep_ratio=True)
        ],
                    [
                        dict(
                            type='RandomChoiceResize',
                            scales=[(400, 1333), (500, 1333), (600, 1333)],
                            keep_ratio=True),
                        dict(
                            type='RandomCrop',
                            crop_type='absolute_range',
                            crop_size=(384, 600),
                            allow_negative_crop=True),
                        dict(
                            type='RandomChoiceResize',
                            scales=[(480, 1333), (512, 1333), (544, 1333),
                                    (576, 1333), (608, 1333), (640, 1333),
                                    (672, 1333), (704, 1333), (736, 1333),
                                    (768, 1333), (800, 1333)],
                            keep_ratio=True)
                    ]]),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
