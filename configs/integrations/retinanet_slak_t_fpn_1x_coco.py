# mmdet's RetinaNet (retinanet_r50_fpn_1x_coco.py: COCO, 1x, FPN P3-P7)
# with SLaK-T in place of ResNet-50. Only what differs:
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/slak_t_drop_in.py'
]
model = dict(
    # _delete_: the ResNet keys (depth, style, ...) must not reach SLaK
    backbone=dict(_delete_=True, **_base_.slak_t),
    # all four SLaK stages in, the base's start_level=1 skips the stride-4
    # map: P3-P7 at strides 8-128, the anchor strides of the RetinaHead.
    # (out_indices=(1, 2, 3) would need start_level=0 too.)
    neck=dict(in_channels=_base_.slak_t_channels))
# AdamW with layer-wise lr decay in place of ResNet's SGD (the base's
# wrapper settings stay)
optim_wrapper = _base_.slak_det_optim_wrapper
