# mmseg's MaskFormer (maskformer_r50-d32_8xb2-160k_ade20k-512x512.py) with
# SLaK-T in place of ResNet-50. Only what differs:
_base_ = [
    'mmseg::maskformer/maskformer_r50-d32_8xb2-160k_ade20k-512x512.py',
    '../_base_/slak_t_drop_in.py'
]
model = dict(
    backbone=dict(_delete_=True, **_base_.slak_t),
    # in_index=[0, 1, 2, 3]: the pixel decoder reads all four outputs
    decode_head=dict(in_channels=_base_.slak_t_channels))
# The base's AdamW is kept (backbone lr_mult=0.1).
