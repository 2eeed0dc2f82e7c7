# Runtime for classification (mmpretrain scope, `pip install -e .[cls]`);
# slak_mm.models.classifiers registers SLaK's classifier parts and slak_mm's
# runner hooks in mmpretrain (kept out of `import slak_mm`: mmpretrain's
# models take seconds to import).
default_scope = 'mmpretrain'
custom_imports = dict(
    imports=['slak_mm', 'slak_mm.models.classifiers'],
    allow_failed_imports=False)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # SafeCheckpointHook (slak_mm.engine): new checkpoint, then the
    # last_checkpoint pointer, then pruning, so a crash keeps a loadable one
    checkpoint=dict(
        type='SafeCheckpointHook',
        interval=1,
        max_keep_ckpts=2,
        backend_args=dict(backend='atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
