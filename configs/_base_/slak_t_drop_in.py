# SLaK-T parts for framework configs (configs/integrations/): mmdet's and
# mmseg's packaged configs keep their detector / segmentor, data and
# runtime, and take these as variables (a base may not redefine their
# model / optim_wrapper keys, so nothing here is a key they also set):
#   model.backbone = dict(_delete_=True, **_base_.slak_t)
#   neck / head in_channels = _base_.slak_t_channels (strides 4/8/16/32)
#   optim_wrapper = dict(_delete_=True, **_base_.slak_{det,seg}_optim_wrapper)
# No custom_imports here: a base that sets its own (mmseg's Mask2Former) would
# clash with it ("Duplicate key ... among bases"). Our tools and
# `python -m slak_mm.mm_tool` import slak_mm; another runner needs 'slak_mm'
# added to the top config's custom_imports (with the base's entries).
checkpoint = 'checkpoints/SLaK_tiny_checkpoint.pth'  # official ImageNet-1K
slak_t = dict(
    type='SLaK',
    arch='tiny',
    kernel_size=(51, 49, 47, 13),
    small_kernel=5,
    width_factor=1.3,
    drop_path_rate=0.4,
    layer_scale_init_value=1.0,
    out_indices=(0, 1, 2, 3),
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    sparse=True,  # the pretrained zeros stay zero (with SparseMaskHook)
    init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
slak_t_channels = [124, 249, 499, 998]  # = SLaK(**slak_t).out_channels
custom_hooks = [dict(type='SparseMaskHook', interval=1000)]
# AdamW with the ConvNeXt layer-decay rules (SLaK keeps ConvNeXt's
# parameter names) in place of the frameworks' ResNet SGD; as the official
# SLaK COCO (layer-wise 0.7) and ADE20K (stage-wise 0.9) runs
slak_det_optim_wrapper = dict(
    type='OptimWrapper',
    constructor='SLaKLearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6),
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
slak_seg_optim_wrapper = dict(
    slak_det_optim_wrapper,
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6))
# mmseg's PolyLR keeps eta_min=1e-4 (made for SGD at lr 0.01): at AdamW's
# lr 1e-4 that is no decay at all. Warm-up, then linear decay to 0:
slak_seg_param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.0,
        by_epoch=False,
        begin=1500,
        end=160000)
]
