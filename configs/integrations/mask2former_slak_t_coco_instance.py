# mmdet's Mask2Former for instance segmentation
# (mask2former_r50_8xb2-lsj-50e_coco.py: COCO, LSJ 1024, 50 epochs) with
# SLaK-T in place of ResNet-50. Only what differs:
_base_ = [
    'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',
    '../_base_/slak_t_drop_in.py'
]
model = dict(
    backbone=dict(_delete_=True, **_base_.slak_t),
    # no neck: the pixel decoder reads all four outputs (strides 4-32)
    panoptic_head=dict(in_channels=_base_.slak_t_channels))
# The base's AdamW is kept (backbone lr_mult=0.1, no decay on the queries).
