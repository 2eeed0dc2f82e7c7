# ImageNet-1K validation in the ImageFolder layout,
# data_root/val/<wnid>/*.JPEG (classes indexed in sorted folder order, as
# the official training did), with the official eval transform: shorter
# side to 256 (crop_pct 0.875), bicubic (PIL), centre crop 224. For
# mmpretrain's flat layout with meta/val.txt add
# --cfg-options test_dataloader.dataset.ann_file=meta/val.txt
data_root = 'data/imagenet'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=False,
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix=dict(img_path='val'),
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_evaluator = dict(type='Accuracy', topk=(1, 5))
test_cfg = dict()
