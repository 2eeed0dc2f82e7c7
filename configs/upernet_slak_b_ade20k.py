# UperNet + SLaK-B on ADE20K (wider: 166/332/665/1331 channels).
checkpoint = 'checkpoints/SLaK_base_checkpoint.pth'
_base_ = ['upernet_slak_t_ade20k.py']
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(in_channels=[166, 332, 665, 1331]),
    auxiliary_head=dict(in_channels=665))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
