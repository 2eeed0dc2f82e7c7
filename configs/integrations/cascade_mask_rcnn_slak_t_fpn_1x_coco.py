# mmdet's Cascade Mask R-CNN (cascade-mask-rcnn_r50_fpn_1x_coco.py: COCO
# instances, 1x) with SLaK-T in place of ResNet-50. Only what differs:
_base_ = [
    'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/slak_t_drop_in.py'
]
model = dict(
    backbone=dict(_delete_=True, **_base_.slak_t),
    # strides 4-32 into FPN levels 0-3 (RoI extractors: strides 4-32)
    neck=dict(in_channels=_base_.slak_t_channels))
# AdamW with layer-wise lr decay in place of ResNet's SGD (the base's
# wrapper settings stay)
optim_wrapper = _base_.slak_det_optim_wrapper
