# UperNet + SLaK-S on ADE20K (as the tiny config, deeper third stage).
checkpoint = 'checkpoints/SLaK_small_checkpoint.pth'
_base_ = ['upernet_slak_t_ade20k.py']
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
