# Runtime for detection (mmdet scope), as mmdet's _base_/default_runtime.py;
# importing slak_mm registers SLaK and its layer-decay optimizer constructor.
default_scope = 'mmdet'
custom_imports = dict(imports=['slak_mm'], allow_failed_imports=False)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # SafeCheckpointHook (slak_mm.engine): new checkpoint, then the
    # last_checkpoint pointer, then pruning, so a crash keeps a loadable one;
    # atomic_local (slak_mm.checkpoint): no file is ever left half-written
    checkpoint=dict(
        type='SafeCheckpointHook',
        interval=1,
        backend_args=dict(backend='atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # refuses a load_from / test / resume file that does not fit the model
    # (allow_partial=True to load what fits)
    load_check=dict(type='CheckpointLoadCheckHook', allow_partial=False),
    visualization=dict(type='DetVisualizationHook'))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
