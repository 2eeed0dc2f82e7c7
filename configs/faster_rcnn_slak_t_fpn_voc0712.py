# Faster R-CNN + FPN + SLaK-T (kernels 51/49/47/13, width x1.3) on PASCAL
# VOC: trained on VOC2007+2012 trainval, tested on VOC2007 test (mAP, VOC
# 11-point), 36 epochs, 8 GPUs x 2 images. Official ImageNet-1K checkpoint:
checkpoint = 'checkpoints/SLaK_tiny_checkpoint.pth'
_base_ = [
    '_base_/models/faster_rcnn_slak_fpn.py', '_base_/datasets/voc0712.py',
    '_base_/default_runtime_det.py', '_base_/schedules/det_adamw_3x.py'
]
# Choices (the SLaK paper gives no VOC recipe): drop_path 0.4 and layer
# scale 1.0 as for COCO; AdamW lr 1e-4 (half the COCO lr: VOC is ~7x
# smaller), weight decay 0.05, layer-wise decay 0.7 over num_layers 6, lr x0.1
# at epochs 27 and 33 (schedules/det_adamw_3x.py).
model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    roi_head=dict(bbox_head=dict(num_classes=20)))
optim_wrapper = dict(optimizer=dict(lr=1e-4))
