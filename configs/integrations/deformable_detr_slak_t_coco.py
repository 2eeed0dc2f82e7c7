# mmdet's Deformable DETR (deformable-detr_r50_16xb2-50e_coco.py: COCO, 50
# epochs) with SLaK-T in place of ResNet-50. Only what differs:
_base_ = [
    'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
    '../_base_/slak_t_drop_in.py'
]
model = dict(
    # strides 8/16/32 as ResNet's out_indices=(1, 2, 3); the ChannelMapper
    # adds the fourth level (stride 64)
    backbone=dict(_delete_=True, **dict(_base_.slak_t, out_indices=(1, 2, 3))),
    neck=dict(in_channels=_base_.slak_t_channels[1:]))
# The base's AdamW is kept (backbone lr_mult=0.1, sampling offsets 0.1).
