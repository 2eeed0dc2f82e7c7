# Fine-tune SLaK-T (kernels 51/49/47/13, width x1.3) from the official
# ImageNet-1K checkpoint on an ImageNet-style folder of your own classes
# (data_root/{train,val}/<class>/*.JPEG):
#   python tools/train.py configs/imagenet/slak_t_finetune_imagefolder.py \
#       --cfg-options data_root=DIR num_classes=N
#   python tools/test.py configs/imagenet/slak_t_finetune_imagefolder.py \
#       work_dirs/slak_t_finetune_imagefolder/epoch_30.pth   # accuracy/top1
# The backbone loads the official weights (sparse: its zeros stay zero, the
# backbone keeps them; the hook logs the density); the head is new, for
# num_classes classes.
checkpoint = 'checkpoints/SLaK_tiny_checkpoint.pth'  # official ImageNet-1K
num_classes = 1000
_base_ = [
    '../_base_/models/slak_in1k_cls.py', '../_base_/datasets/imagenet.py',
    '../_base_/default_runtime_cls.py',
    '../_base_/schedules/cls_adamw_finetune.py'
]
model = dict(
    data_preprocessor=dict(num_classes=num_classes),
    backbone=dict(
        drop_path_rate=0.1,
        sparse=True,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    head=dict(num_classes=num_classes, in_channels=998, topk=(1, 5)))
custom_hooks = [dict(type='SparseMaskHook', interval=1000)]
