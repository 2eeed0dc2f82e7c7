# 160k iterations, AdamW with stage-wise lr decay, linear warm-up then poly.
max_iters = 160000
warmup_iters = 1500
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='SLaKLearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6))
# lr set for 16 images per step (8 GPUs x 2); --auto-scale-lr rescales it
auto_scale_lr = dict(enable=False, base_batch_size=16)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.0,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # SafeCheckpointHook (slak_mm.engine): new checkpoint, then the
    # last_checkpoint pointer, then pruning, so a crash keeps a loadable one;
    # atomic_local (slak_mm.checkpoint): no file is ever left half-written
    checkpoint=dict(
        type='SafeCheckpointHook',
        by_epoch=False,
        interval=16000,
        max_keep_ckpts=3,
        backend_args=dict(backend='atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # refuses a load_from / test / resume file that does not fit the model
    # (allow_partial=True to load what fits)
    load_check=dict(type='CheckpointLoadCheckHook', allow_partial=False),
    visualization=dict(type='SegVisualizationHook'))
