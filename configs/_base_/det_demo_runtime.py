# Schedule and runtime of the CPU detection demos (configs/demo/*_synthetic_
# {voc,coco}.py): detection runtime and the SLaK AdamW constructor of
# schedules/det_adamw_3x.py, but from scratch: AdamW at 1e-3 with a mild
# layer-wise decay (0.9), short warm-up, lr x0.1 for the last 2 epochs;
# evaluate and save once, at the end.
_base_ = ['./default_runtime_det.py', './schedules/det_adamw_3x.py']
max_epochs = 24
warmup_iters = 50
optim_wrapper = dict(
    optimizer=dict(lr=1e-3, weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.9))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.001,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[max_epochs - 2],
        gamma=0.1)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
log_processor = dict(window_size=10)
randomness = dict(seed=0)
