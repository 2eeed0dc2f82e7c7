# mmseg's Semantic FPN (fpn_r50_4xb4-160k_ade20k-512x512.py: ADE20K
# 512x512, 160k) with SLaK-T in place of ResNet-50. Only what differs:
_base_ = [
    'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py',
    '../_base_/slak_t_drop_in.py'
]
model = dict(
    # the base's ImageNet ResNet URL: EncoderDecoder passes it to SLaK,
    # which takes its weights from init_cfg only
    pretrained=None,
    backbone=dict(_delete_=True, **_base_.slak_t),
    # strides 4-32, as the FPNHead's feature_strides
    neck=dict(in_channels=_base_.slak_t_channels))
# AdamW with stage-wise lr decay in place of ResNet's SGD (the base's
# wrapper settings stay), and a schedule that decays at AdamW's lr
optim_wrapper = _base_.slak_seg_optim_wrapper
param_scheduler = _base_.slak_seg_param_scheduler
