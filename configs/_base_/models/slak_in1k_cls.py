# The official SLaK ImageNet-1K classifier from mmpretrain parts: SLaK body
# (no output norms), global average pooling, LayerNorm + Linear head
# (slak_mm.models.classifiers). Weights: slak_mm's load_official_classifier
# maps the official file's keys (tools/test_imagenet.py).
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        num_classes=1000,
        # ImageNet mean / std of RGB in 0..255 (the official eval transform)
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='SLaKClsBackbone',
        arch='tiny',
        kernel_size=(51, 49, 47, 13),
        small_kernel=5,
        width_factor=1.3,
        decompose=True,
        layer_scale_init_value=1e-6,
        out_indices=(3, ),
        branch_norm_cfg=dict(type='BN', requires_grad=True)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='SLaKClsHead',
        num_classes=1000,
        in_channels=998,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
