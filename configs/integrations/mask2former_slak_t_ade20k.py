# mmseg's Mask2Former (mask2former_r50_8xb2-160k_ade20k-512x512.py: ADE20K,
# 512x512, 160k) with SLaK-T in place of ResNet-50. Only what differs:
_base_ = [
    'mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py',
    '../_base_/slak_t_drop_in.py'
]
model = dict(
    # _delete_: the ResNet keys (depth, style, ...) must not reach SLaK
    backbone=dict(_delete_=True, **_base_.slak_t),
    # the head's pixel decoder reads all four outputs (strides 4-32); it
    # picks none by in_index
    decode_head=dict(in_channels=_base_.slak_t_channels))
# The base's AdamW is kept (backbone lr_mult=0.1, no decay on the queries).
