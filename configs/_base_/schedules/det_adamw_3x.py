# 3x detection schedule (36 epochs) of the official SLaK / ConvNeXt COCO
# runs: AdamW with layer-wise lr decay over the backbone (SLaK keeps
# ConvNeXt's parameter layout, so ConvNeXt-T's decay_rate 0.7 over
# num_layers 6 applies), linear warm-up over 1000 iterations, lr x0.1 at
# epochs 27 and 33. lr 2e-4 is for 16 images per step (8 GPUs x 2).
max_epochs = 36
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[27, 33],
        gamma=0.1)
]

optim_wrapper = dict(
    type='OptimWrapper',
    constructor='SLaKLearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6),
    optimizer=dict(
        type='AdamW', lr=0.0002, betas=(0.9, 0.999), weight_decay=0.05))

# Default setting for scaling LR automatically
#   - `enable` means enable scaling LR automatically or not by default.
#   - `base_batch_size` = (8 GPUs) x (2 samples per GPU).
auto_scale_lr = dict(enable=False, base_batch_size=16)
