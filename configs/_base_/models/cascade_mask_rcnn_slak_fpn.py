# Cascade Mask R-CNN + FPN with a SLaK-T backbone: data preprocessor,
# backbone, FPN and RPN as faster_rcnn_slak_fpn.py (stage channels
# 124/249/499/998 at strides 4/8/16/32). As the official SLaK / ConvNeXt COCO
# setting: three "4conv1fc" box heads (Shared4Conv1FCBBoxHead, SyncBN) with
# GIoU loss (weight 10) on decoded boxes; the rest is mmdet's
# cascade-mask-rcnn_r50_fpn.py. The backbone has no init_cfg here: the top
# configs add the pretrained weights.
_base_ = ['./faster_rcnn_slak_fpn.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='CascadeRCNN',
    data_preprocessor=dict(pad_mask=True),
    rpn_head=dict(
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),
    # merged into the base's roi_head: its bbox_roi_extractor is kept, every
    # other StandardRoIHead key is replaced
    roi_head=dict(
        type='CascadeRoIHead',
        num_stages=3,
        stage_loss_weights=[1, 0.5, 0.25],
        # the three stages differ only in their box-delta stds
        bbox_head=[
            dict(
                type='Shared4Conv1FCBBoxHead',
                in_channels=256,
                conv_out_channels=256,
                fc_out_channels=1024,
                roi_feat_size=7,
                num_classes=80,
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder',
                    target_means=[0., 0., 0., 0.],
                    target_stds=stds),
                reg_class_agnostic=False,
                reg_decoded_bbox=True,
                norm_cfg=norm_cfg,
                loss_cls=dict(
                    type='CrossEntropyLoss',
                    use_sigmoid=False,
                    loss_weight=1.0),
                loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
            for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                         [0.033, 0.033, 0.067, 0.067])
        ],
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=4,
            in_channels=256,
            conv_out_channels=256,
            num_classes=80,
            loss_mask=dict(
                type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    # model training and testing settings
    train_cfg=dict(
        rpn=dict(allowed_border=0),
        rpn_proposal=dict(max_per_img=2000),
        # each stage: the base's (Faster R-CNN) rcnn assigner and sampler at
        # the stage's IoU threshold, with 28x28 mask targets
        rcnn=[
            dict(
                _base_.model.train_cfg.rcnn,
                assigner=dict(
                    _base_.model.train_cfg.rcnn.assigner,
                    pos_iou_thr=iou,
                    neg_iou_thr=iou,
                    min_pos_iou=iou),
                mask_size=28) for iou in (0.5, 0.6, 0.7)
        ]),
    test_cfg=dict(rcnn=dict(mask_thr_binary=0.5)))
