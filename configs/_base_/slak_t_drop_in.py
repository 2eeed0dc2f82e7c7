# SLaK-T for any packaged mmdet / mmseg config: a base that sets only
# `slak_*` variables, so it composes with every stock base (mmengine
# refuses two bases that set one key; tests/configs/test_drop_in_base.py checks
# these names against every packaged config). The recipe:
#   _base_ = ['mmdet::...', 'slak_mm::_base_/slak_t_drop_in.py']
#   model = dict(backbone=dict(_delete_=True, **_base_.slak_t),
#                neck=dict(in_channels=_base_.slak_t_channels))
# and, in place of the ResNet's SGD (no _delete_: the base's wrapper type,
# clip_grad, custom_keys stay; the build logs what the recipe sets):
#   optim_wrapper = _base_.slak_det_optim_wrapper      # or slak_seg_...
# Sparsity needs no hook: SLaK(sparse=True) keeps its own zeros.
# No custom_imports here: a base that sets its own (mmseg's Mask2Former)
# would clash with it. Our tools and `python -m slak_mm.mm_tool` import
# slak_mm; another runner needs 'slak_mm' added to the top config's
# custom_imports (with the base's entries), or `import slak_mm` first.
slak_t_checkpoint = 'checkpoints/SLaK_tiny_checkpoint.pth'  # ImageNet-1K
slak_t = dict(
    type='SLaK',
    arch='tiny',
    kernel_size=(51, 49, 47, 13),
    small_kernel=5,
    width_factor=1.3,
    drop_path_rate=0.4,
    layer_scale_init_value=1.0,
    out_indices=(0, 1, 2, 3),
    branch_norm_cfg=dict(type='SyncBN', requires_grad=True),
    sparse=True,  # the pretrained zeros stay zero
    init_cfg=dict(type='Pretrained', checkpoint=slak_t_checkpoint))
slak_t_channels = [124, 249, 499, 998]  # = SLaK(**slak_t).out_channels
# AdamW with the ConvNeXt layer-decay rules (SLaK keeps ConvNeXt's
# parameter names), as the official SLaK COCO (layer-wise 0.7) and ADE20K
# (stage-wise 0.9) runs. Merged into the base's optim_wrapper: only the
# optimizer is replaced (_delete_: SGD's momentum is no AdamW argument);
# paramwise_cfg gains the layer decay next to the base's custom_keys.
slak_det_optim_wrapper = dict(
    constructor='SLaKLearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6),
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=1e-4,
        betas=(0.9, 0.999),
        weight_decay=0.05))
slak_seg_optim_wrapper = dict(
    slak_det_optim_wrapper,
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6))
# mmseg's PolyLR keeps eta_min=1e-4 (made for SGD at lr 0.01): at AdamW's
# lr 1e-4 that is no decay at all. Warm-up, then linear decay to 0 at the
# 160k schedule's end (set `end` to max_iters for another schedule):
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
