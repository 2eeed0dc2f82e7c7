# PASCAL VOC: train on VOC2007 + VOC2012 trainval, test on VOC2007 test
# (mmdet's voc0712 layout: DATA_ROOT/VOC2007, DATA_ROOT/VOC2012, each with
# JPEGImages/, Annotations/*.xml and ImageSets/Main/*.txt).
# Unlike mmdet's voc0712.py the training set is not wrapped in
# RepeatDataset(times=3): the SLaK detection schedule counts real epochs
# (36, see schedules/det_adamw_3x.py).
dataset_type = 'VOCDataset'
data_root = 'data/VOCdevkit'
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    # avoid bboxes being resized
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
# --tta: horizontal flip; the boxes of both views merged by NMS
tta_model = dict(
    type='DetTTAModel',
    tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(
        type='TestTimeAug',
        transforms=[[dict(type='Resize', scale=(1000, 600), keep_ratio=True)],
                    [
                        dict(type='RandomFlip', prob=1.),
                        dict(type='RandomFlip', prob=0.)
                    ], [dict(type='LoadAnnotations', with_bbox=True)],
                    [
                        dict(
                            type='PackDetInputs',
                            meta_keys=('img_id', 'img_path', 'ori_shape',
                                       'img_shape', 'scale_factor', 'flip',
                                       'flip_direction'))
                    ]])
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='ConcatDataset',
        # VOCDataset adds a per-year `dataset_type` to its metainfo, which
        # ConcatDataset would reject as a mismatch without `ignore_keys`.
        ignore_keys=['dataset_type'],
        datasets=[
            dict(
                type=dataset_type,
                data_root=data_root,
                ann_file=f'{year}/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root=f'{year}/'),
                filter_cfg=dict(
                    filter_empty_gt=True, min_size=32, bbox_min_size=32),
                pipeline=train_pipeline,
                backend_args=backend_args) for year in ('VOC2007', 'VOC2012')
        ]))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# PASCAL VOC2007 uses the 11-point interpolated AP (mmdet's default for this
# dataset); VOC2012 would use 'area'.
val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator
