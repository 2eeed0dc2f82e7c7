# mmseg's DeepLabV3+ (deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py:
# ADE20K 512x512, 160k) with SLaK-T in place of the dilated ResNet-50.
# Only what differs:
_base_ = [
    'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py',
    '../_base_/slak_t_drop_in.py'
]
model = dict(
    # the base's ImageNet ResNet URL: EncoderDecoder passes it to SLaK,
    # which takes its weights from init_cfg only
    pretrained=None,
    backbone=dict(_delete_=True, **_base_.slak_t),
    # ASPP on the stride-32 map (SLaK does not dilate: 16x16 at 512 px),
    # the decoder's low-level branch (c1) on the stride-4 map
    decode_head=dict(
        in_channels=_base_.slak_t_channels[3],
        in_index=3,
        c1_in_channels=_base_.slak_t_channels[0]),
    auxiliary_head=dict(in_channels=_base_.slak_t_channels[2], in_index=2))
# AdamW with stage-wise lr decay in place of ResNet's SGD (the base's
# wrapper settings stay), and a schedule that decays at AdamW's lr
optim_wrapper = _base_.slak_seg_optim_wrapper
param_scheduler = _base_.slak_seg_param_scheduler
