# ImageNet-1K validation only (the official checkpoints' evaluation):
# imagenet.py's folder layout, data_root/val/<wnid>/*.JPEG, and its
# evaluation transform (shorter side 256, bicubic, centre crop 224), with
# no training or validation loop. For mmpretrain's flat layout with
# meta/val.txt add --cfg-options test_dataloader.dataset.ann_file=meta/val.txt
_base_ = './imagenet.py'
train_dataloader = None
val_dataloader = None
val_evaluator = None
test_cfg = dict()
