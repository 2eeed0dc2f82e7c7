"""Small synthetic datasets in the real ADE20K, PASCAL VOC, COCO and ImageNet
layouts.

The generated folders are read unchanged by mmseg's ``ADE20KDataset``,
mmdet's ``VOCDataset`` / ``CocoDataset`` (instances, and HTC's stuff maps) /
``CocoPanopticDataset`` and mmpretrain's ``CustomDataset`` (ImageNet's
class folders) / ``ImageNet`` (its ``meta`` lists), so configs written for
the real datasets run on them by only changing ``data_root``. Every image
is a textured background (smooth colour noise, stripes and pixel noise) with a
few non-overlapping coloured shapes; each class has its own shape and
colour, so a small model can learn them within minutes on a CPU.

Labels are exact: every shape is a convex polygon (an ellipse is drawn as a
64-vertex polygon) rasterised with the pixel-centre rule, the same rule
pycocotools uses for COCO polygons. The segmentation label map, the boxes
(tight boxes of the drawn pixels) and the COCO polygons therefore all
describe the pixels that were painted.

Output is deterministic: every image draws from its own random generator
seeded by ``(seed, dataset/split, index)``, so the same arguments give
byte-identical files. :func:`make_scene` returns the in-memory ground truth
of any generated image (used by the tests).

Layouts written (``ROOT`` is the ``root`` argument)::

    ROOT/ADEChallengeData2016/images/{training,validation}/ADE_*.jpg
    ROOT/ADEChallengeData2016/annotations/{training,validation}/ADE_*.png
    ROOT/VOCdevkit/VOC2007/{JPEGImages,Annotations,ImageSets/Main}
    ROOT/VOCdevkit/VOC2012/{JPEGImages,Annotations,ImageSets/Main}
    ROOT/coco/annotations/instances_{train,val}2017.json
    ROOT/coco/{train,val}2017/*.jpg
    ROOT/coco/stuffthingmaps/{train,val}2017/*.png
    ROOT/coco/annotations/panoptic_{train,val}2017.json
    ROOT/coco/annotations/panoptic_{train,val}2017/*.png
    ROOT/imagenet/{train,val}/<wnid>/*.JPEG
    ROOT/imagenet/meta/{train,val}.txt

Each dataset folder also holds a small marker file
(``.slak_mm_synthetic.json``, with the generation arguments). A dataset
folder is only replaced when it carries that marker, so a real dataset is
never overwritten.
"""
import json
import os
import os.path as osp
import shutil
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = [
    'ADE20K_CLASSES', 'ADE20K_BACKGROUND', 'VOC_CLASSES', 'COCO_CLASSES',
    'COCO_CATEGORIES', 'COCO_BACKGROUND', 'COCO_PANOPTIC_CATEGORIES',
    'IMAGENET_CLASSES', 'ShapeClass', 'SceneObject', 'Scene', 'make_scene',
    'generate_ade20k', 'generate_voc', 'generate_coco', 'generate_imagenet',
    'generate_all', 'SYNTHETIC_LAYOUTS', 'synthetic_kind'
]

ImgSize = Union[int, Sequence[int]]

MARKER_FILE = '.slak_mm_synthetic.json'
MIN_IMG_SIDE, MAX_IMG_SIDE = 32, 4096
MAX_IMAGES = 100000
MAX_OBJECTS = 16
JPEG_QUALITY = 95


class ShapeClass(NamedTuple):
    """One class of the synthetic data: how it is drawn and what it is called.

    Attributes:
        name (str): Class name in the target dataset.
        dataset_id (int): Label id in the target dataset (ADE20K label value
            1..150 in the PNG, COCO ``category_id``; for VOC the 1-based
            position in the 20 VOC classes, informational only).
        shape (str): ``'rectangle'``, ``'ellipse'``, ``'triangle'``,
            ``'diamond'``, ``'hexagon'`` or ``'pentagon'``.
        color (tuple[int, int, int]): Base RGB colour.
    """
    name: str
    dataset_id: int
    shape: str
    color: Tuple[int, int, int]


# One look per class slot, shared by the three datasets (slot i of every
# dataset is drawn the same way). Saturated colours on a low-saturation
# background.
_STYLES = (
    ('rectangle', (220, 40, 40)),  # red
    ('ellipse', (40, 90, 230)),  # blue
    ('triangle', (40, 190, 60)),  # green
    ('diamond', (250, 160, 20)),  # orange
    ('hexagon', (200, 40, 200)),  # magenta
    ('pentagon', (20, 200, 210)),  # cyan
)


def _classes(names_ids: Sequence[Tuple[str, int]]) -> Tuple[ShapeClass, ...]:
    return tuple(
        ShapeClass(name, i, *style)
        for (name, i), style in zip(names_ids, _STYLES))


#: ADE20K label of the textured background (``wall``; label value 1).
ADE20K_BACKGROUND = ShapeClass('wall', 1, 'background', (0, 0, 0))
#: ADE20K object classes (label value = index in mmseg's 150 classes + 1).
ADE20K_CLASSES = _classes([('person', 13), ('door', 15), ('table', 16),
                           ('car', 21), ('painting', 23), ('lamp', 37)])
#: VOC object classes (names of the 20 VOC classes; id = 1-based position).
VOC_CLASSES = _classes([('person', 15), ('car', 7), ('dog', 12), ('bird', 3),
                        ('bottle', 5), ('chair', 9)])
#: COCO object classes with their real COCO category ids.
COCO_CLASSES = _classes([('person', 1), ('car', 3), ('dog', 18), ('bird', 16),
                         ('bottle', 44), ('chair', 62)])

_COCO_NAMES = ('person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus',
               'train', 'truck', 'boat', 'traffic light', 'fire hydrant',
               'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
               'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe',
               'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee',
               'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat',
               'baseball glove', 'skateboard', 'surfboard', 'tennis racket',
               'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl',
               'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot',
               'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
               'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop',
               'mouse', 'remote', 'keyboard', 'cell phone', 'microwave',
               'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock',
               'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush')
_COCO_UNUSED_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
_COCO_SUPERCATEGORIES = (  # (supercategory, number of consecutive names)
    ('person', 1), ('vehicle', 8), ('outdoor', 5), ('animal', 10),
    ('accessory', 5), ('sports', 10), ('kitchen', 7), ('food', 10),
    ('furniture', 6), ('electronic', 6), ('appliance', 5), ('indoor', 7))


def _coco_categories() -> Tuple[dict, ...]:
    ids = [i for i in range(1, 91) if i not in _COCO_UNUSED_IDS]
    supers = [s for s, n in _COCO_SUPERCATEGORIES for _ in range(n)]
    return tuple(
        dict(supercategory=s, id=i, name=n)
        for s, i, n in zip(supers, ids, _COCO_NAMES))


#: The 80 real COCO categories (all are written, so mmdet's CocoDataset maps
#: category ids to the same labels as on the real dataset).
COCO_CATEGORIES = _coco_categories()

#: The COCO stuff class of the textured background (``wall-brick``: id 171
#: in COCO-Stuff, hence 170 in HTC's ``stuffthingmaps``, and in COCO
#: panoptic).
COCO_BACKGROUND = ShapeClass('wall-brick', 171, 'background', (0, 0, 0))
#: The 53 stuff categories of COCO panoptic (id, name), after the 80 things.
_COCO_PANOPTIC_STUFF = (
    (92, 'banner'), (93, 'blanket'), (95, 'bridge'), (100, 'cardboard'),
    (107, 'counter'), (109, 'curtain'), (112, 'door-stuff'),
    (118, 'floor-wood'), (119, 'flower'), (122, 'fruit'),
    (125, 'gravel'), (128, 'house'), (130, 'light'),
    (133, 'mirror-stuff'), (138, 'net'), (141, 'pillow'),
    (144, 'platform'), (145, 'playingfield'), (147, 'railroad'),
    (148, 'river'), (149, 'road'), (151, 'roof'), (154,
                                                   'sand'),
    (155, 'sea'), (156, 'shelf'), (159, 'snow'),
    (161, 'stairs'), (166, 'tent'), (168, 'towel'), (171,
                                                     'wall-brick'),
    (175, 'wall-stone'), (176, 'wall-tile'), (177, 'wall-wood'),
    (178, 'water-other'), (180, 'window-blind'), (181, 'window-other'),
    (184, 'tree-merged'), (185, 'fence-merged'), (186, 'ceiling-merged'),
    (187, 'sky-other-merged'), (188, 'cabinet-merged'), (189, 'table-merged'),
    (190, 'floor-other-merged'), (191, 'pavement-merged'), (192,
                                                            'mountain-merged'),
    (193, 'grass-merged'), (194, 'dirt-merged'), (195, 'paper-merged'),
    (196, 'food-other-merged'), (197, 'building-other-merged'),
    (198, 'rock-merged'), (199, 'wall-other-merged'), (200, 'rug-merged'))
#: The 133 COCO panoptic categories (80 things, 53 stuff) with their real
#: ids and ``isthing``, as ``panoptic_{train,val}2017.json`` lists them.
COCO_PANOPTIC_CATEGORIES = tuple(
    dict(c, isthing=1) for c in COCO_CATEGORIES) + tuple(
        dict(supercategory='stuff', id=i, name=n, isthing=0)
        for i, n in _COCO_PANOPTIC_STUFF)
#: ImageNet-style classes: the first six ImageNet-1K synsets, so a class
#: folder's label (its index in sorted folder order) is its ImageNet-1K
#: label too. Each image shows shapes of one class.
IMAGENET_CLASSES = _classes([('n01440764', 0), ('n01443537', 1),
                             ('n01484850', 2), ('n01491361', 3),
                             ('n01494475', 4), ('n01496331', 5)])

_DATASET_CLASSES = dict(
    ade20k=ADE20K_CLASSES,
    voc=VOC_CLASSES,
    coco=COCO_CLASSES,
    imagenet=IMAGENET_CLASSES)
_DEFAULTS = dict(
    ade20k=dict(num_train=32, num_val=8, img_size=(128, 128)),
    voc=dict(num_train=32, num_val=8, img_size=(160, 160)),
    coco=dict(num_train=32, num_val=8, img_size=(160, 160)),
    imagenet=dict(num_train=48, num_val=12, img_size=(96, 96)))


@dataclass
class SceneObject:
    """One drawn object.

    Attributes:
        cls (ShapeClass): Its class.
        polygon (np.ndarray): ``(N, 2)`` float vertices ``(x, y)`` in pixel
            units (pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``); the
            drawn pixels are those whose centre lies inside.
        mask (np.ndarray): ``(H, W)`` bool mask of the drawn pixels.
        bbox (tuple[int, int, int, int]): Tight box of the drawn pixels,
            ``(x_min, y_min, x_max, y_max)``, inclusive, 0-based.
    """
    cls: ShapeClass
    polygon: np.ndarray
    mask: np.ndarray
    bbox: Tuple[int, int, int, int]

    @property
    def area(self) -> int:
        """Number of drawn pixels."""
        return int(self.mask.sum())


@dataclass
class Scene:
    """A generated image and its ground truth.

    Attributes:
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB image (before JPEG).
        objects (list[SceneObject]): Objects, in drawing order; they do not
            overlap.
    """
    image: np.ndarray
    objects: List[SceneObject] = field(default_factory=list)


# ----------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------
def _check_int(name: str, value, low: int, high: int) -> int:
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or not low <= value <= high):
        raise ValueError(f'{name} must be an integer in [{low}, {high}], '
                         f'got {value!r}')
    return int(value)


def _check_img_size(img_size: ImgSize) -> Tuple[int, int]:
    if isinstance(img_size,
                  (int, np.integer)) and not isinstance(img_size, bool):
        img_size = (img_size, img_size)
    if (isinstance(img_size, (str, bytes))
            or not isinstance(img_size, Sequence) or len(img_size) != 2):
        raise ValueError('img_size must be an int or a (height, width) pair '
                         f'of integers in [{MIN_IMG_SIDE}, {MAX_IMG_SIDE}], '
                         f'got {img_size!r}')
    h = _check_int('img_size height', img_size[0], MIN_IMG_SIDE, MAX_IMG_SIDE)
    w = _check_int('img_size width', img_size[1], MIN_IMG_SIDE, MAX_IMG_SIDE)
    return h, w


def _check_common(num_train, num_val, img_size, max_objects, seed):
    return (_check_int('num_train', num_train, 1, MAX_IMAGES),
            _check_int('num_val', num_val, 1,
                       MAX_IMAGES), _check_img_size(img_size),
            _check_int('max_objects', max_objects, 1,
                       MAX_OBJECTS), _check_int('seed', seed, 0, 2**63 - 1))


# ----------------------------------------------------------------------------
# scene synthesis (shared by the three datasets)
# ----------------------------------------------------------------------------
def _polygon_mask(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rasterise a convex polygon: pixels whose centre is inside (or on)."""
    pts = np.asarray(polygon, dtype=np.float64)
    x0 = max(int(np.floor(pts[:, 0].min())), 0)
    x1 = min(int(np.ceil(pts[:, 0].max())), width)
    y0 = max(int(np.floor(pts[:, 1].min())), 0)
    y1 = min(int(np.ceil(pts[:, 1].max())), height)
    mask = np.zeros((height, width), dtype=bool)
    if x1 <= x0 or y1 <= y0:
        return mask
    xs = np.arange(x0, x1) + 0.5
    ys = np.arange(y0, y1) + 0.5
    px, py = np.meshgrid(xs, ys)
    area2 = np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) -
                   np.roll(pts[:, 0], -1) * pts[:, 1])
    sign = 1.0 if area2 >= 0 else -1.0
    inside = np.ones_like(px, dtype=bool)
    for (ax, ay), (bx, by) in zip(pts, np.roll(pts, -1, axis=0)):
        cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
        inside &= sign * cross >= -1e-9
    mask[y0:y1, x0:x1] = inside
    return mask


def _shape_polygon(shape: str, x: int, y: int, w: int, h: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Vertices of ``shape`` fitted in the box ``[x, x+w] x [y, y+h]``."""
    if shape == 'rectangle':
        pts = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    elif shape == 'triangle':
        # apex on one side of the box, base along the opposite side
        side = int(rng.integers(4))
        t = float(rng.uniform(0.2, 0.8))
        if side == 0:  # apex on top
            pts = [(x + t * w, y), (x + w, y + h), (x, y + h)]
        elif side == 1:  # apex at the bottom
            pts = [(x, y), (x + w, y), (x + t * w, y + h)]
        elif side == 2:  # apex on the left
            pts = [(x, y + t * h), (x + w, y), (x + w, y + h)]
        else:  # apex on the right
            pts = [(x, y), (x + w, y + t * h), (x, y + h)]
    elif shape == 'diamond':
        pts = [(x + w / 2, y), (x + w, y + h / 2), (x + w / 2, y + h),
               (x, y + h / 2)]
    else:
        num = dict(ellipse=64, hexagon=6, pentagon=5)[shape]
        # ellipse: fixed phase; polygons: random rotation
        phase = 0.0 if shape == 'ellipse' else float(rng.uniform(0, 2 * np.pi))
        ang = phase + 2 * np.pi * np.arange(num) / num
        pts = np.stack(
            [x + w / 2 + w / 2 * np.cos(ang), y + h / 2 + h / 2 * np.sin(ang)],
            axis=1)
    return np.round(np.asarray(pts, dtype=np.float64), 2)


def _textured_background(rng: np.random.Generator, height: int,
                         width: int) -> np.ndarray:
    """Low-saturation smooth colour noise plus stripes (float, 0..255)."""
    base = rng.uniform(90, 170)
    tint = rng.uniform(-15, 15, size=3)
    coarse = rng.uniform(-1, 1, size=(height // 16 + 2, width // 16 + 2, 3))
    smooth = cv2.resize(
        coarse.astype(np.float32), (width, height),
        interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    period = rng.uniform(6, 24)
    stripes = np.sin(2 * np.pi *
                     (xx * np.cos(theta) + yy * np.sin(theta)) / period +
                     rng.uniform(0, 2 * np.pi))
    img = (base + tint + 25 * smooth + rng.uniform(5, 18) * stripes[..., None])
    return img


def _random_scene(rng: np.random.Generator, img_size: Tuple[int, int],
                  classes: Sequence[ShapeClass], max_objects: int) -> Scene:
    """Draw 1..max_objects non-overlapping shapes on a textured background."""
    height, width = img_size
    short = min(height, width)
    lo = min(24, short // 2)
    hi = max(lo, int(short * 0.55))
    margin = 2

    img = _textured_background(rng, height, width)
    num = int(rng.integers(1, max_objects + 1))
    boxes, objects = [], []
    for _ in range(num):
        for _attempt in range(50):
            w = int(rng.integers(lo, hi + 1))
            h = int(rng.integers(lo, hi + 1))
            x = int(rng.integers(0, width - w + 1))
            y = int(rng.integers(0, height - h + 1))
            if all(x + w + margin <= bx or bx + bw + margin <= x or y + h +
                   margin <= by or by + bh + margin <= y
                   for bx, by, bw, bh in boxes):
                break
        else:
            continue  # no free room for this object
        cls = classes[int(rng.integers(len(classes)))]
        polygon = _shape_polygon(cls.shape, x, y, w, h, rng)
        mask = _polygon_mask(polygon, height, width)
        ys, xs = np.nonzero(mask)
        if xs.size == 0:  # cannot happen for sides >= 16 px; be safe
            continue
        boxes.append((x, y, w, h))
        color = np.asarray(cls.color, np.float64) + rng.uniform(-15, 15, 3)
        # a gentle shading gradient keeps objects from looking flat
        rows = np.nonzero(mask)[0]
        shade = 1.0 + 0.12 * rng.choice([-1.0, 1.0]) * ((rows - y) / h - 0.5)
        img[mask] = shade[:, None] * color[None, :]
        objects.append(
            SceneObject(
                cls, polygon, mask,
                (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))))
    img = img + rng.normal(0, 4, size=img.shape)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return Scene(image=image, objects=objects)


def make_scene(dataset: str,
               split: str,
               index: int,
               img_size: ImgSize,
               max_objects: int = 4,
               seed: int = 0) -> Scene:
    """Recreate the in-memory ground truth of one generated image.

    The generators draw image ``index`` of a split with exactly this call,
    so with the same arguments it returns what was written to disk (the
    image before JPEG compression, the object polygons, masks and boxes).

    Args:
        dataset (str): ``'ade20k'``, ``'voc'``, ``'coco'`` or
            ``'imagenet'``.
        split (str): Split key: ``'training'`` / ``'validation'`` (ADE20K),
            ``'VOC2007/trainval'``, ``'VOC2007/test'``,
            ``'VOC2012/trainval'`` (VOC), ``'train2017'`` / ``'val2017'``
            (COCO), ``'train'`` / ``'val'`` (ImageNet: image ``index``
            shows class ``index % 6`` only).
        index (int): 0-based image index within the split.
        img_size (int | tuple[int, int]): ``(height, width)`` or a side.
        max_objects (int): Upper bound of objects per image. Defaults to 4.
        seed (int): Base seed. Defaults to 0.

    Returns:
        Scene: The image and its objects.
    """
    if dataset not in _DATASET_CLASSES:
        raise ValueError(f'dataset must be one of {sorted(_DATASET_CLASSES)}'
                         f', got {dataset!r}')
    img_size = _check_img_size(img_size)
    max_objects = _check_int('max_objects', max_objects, 1, MAX_OBJECTS)
    seed = _check_int('seed', seed, 0, 2**63 - 1)
    index = _check_int('index', index, 0, MAX_IMAGES)
    key = zlib.crc32(f'{dataset}/{split}'.encode())
    rng = np.random.default_rng([seed, key, index])
    classes = _DATASET_CLASSES[dataset]
    if dataset == 'imagenet':  # one class per image: its label
        classes = classes[index % len(classes):][:1]
    return _random_scene(rng, img_size, classes, max_objects)


# ----------------------------------------------------------------------------
# file helpers
# ----------------------------------------------------------------------------
def _write_bytes(path: str, data: bytes) -> None:
    with open(path, 'wb') as f:
        f.write(data)


def _write_jpg(path: str, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok, path
    _write_bytes(path, buf.tobytes())


def _write_png(path: str, label: np.ndarray) -> None:
    ok, buf = cv2.imencode('.png', label)
    assert ok, path
    _write_bytes(path, buf.tobytes())


def _prepare_dataset_dir(path: str, args: dict) -> None:
    """(Re)create ``path``; refuse to touch a folder we did not write."""
    marker = osp.join(path, MARKER_FILE)
    if osp.isdir(path) and os.listdir(path):
        if not osp.isfile(marker):
            raise FileExistsError(
                f'{path} exists and was not written by the synthetic data '
                'generator (no marker file); refusing to overwrite it')
        shutil.rmtree(path)
    elif osp.exists(path) and not osp.isdir(path):
        raise FileExistsError(f'{path} exists and is not a folder')
    os.makedirs(path, exist_ok=True)
    _write_bytes(marker,
                 (json.dumps(args, sort_keys=True, indent=2) + '\n').encode())


def _start_dataset(root: str, folder: str, dataset: str, num_train, num_val,
                   img_size, max_objects, seed, **extra) -> tuple:
    """Check the common arguments and (re)create ``root/folder``.

    The marker file records ``dataset``, the checked arguments and
    ``extra``.

    Returns:
        tuple: ``(out, num_train, num_val, img_size, max_objects, seed)``:
        the dataset folder and the checked arguments (``img_size`` as
        ``(height, width)``).
    """
    checked = _check_common(num_train, num_val, img_size, max_objects, seed)
    num_train, num_val, img_size, max_objects, seed = checked
    out = osp.join(root, folder)
    _prepare_dataset_dir(
        out,
        dict(
            dataset=dataset,
            num_train=num_train,
            num_val=num_val,
            img_size=list(img_size),
            max_objects=max_objects,
            seed=seed,
            **extra))
    return (out, ) + checked


def _scenes(dataset: str, split: str, num: int, img_size, max_objects, seed):
    for i in range(num):
        yield i, make_scene(dataset, split, i, img_size, max_objects, seed)


# ----------------------------------------------------------------------------
# ADE20K
# ----------------------------------------------------------------------------
def _ade_label_map(scene: Scene, ignore_boundary: bool) -> np.ndarray:
    height, width = scene.image.shape[:2]
    label = np.full((height, width), ADE20K_BACKGROUND.dataset_id, np.uint8)
    for obj in scene.objects:
        label[obj.mask] = obj.cls.dataset_id
    if ignore_boundary:
        # 1-pixel ring of 0 ("other", ignored in training) on the inner edge
        # of each object, where JPEG blurs object and background together
        pad = np.pad(label, 1, mode='edge')
        edge = np.zeros_like(label, dtype=bool)
        for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
            edge |= pad[dy:dy + height, dx:dx + width] != label
        edge &= label != ADE20K_BACKGROUND.dataset_id
        label[edge] = 0
    return label


def generate_ade20k(root: str,
                    num_train: int = 32,
                    num_val: int = 8,
                    img_size: ImgSize = (128, 128),
                    max_objects: int = 4,
                    seed: int = 0,
                    ignore_boundary: bool = True) -> str:
    """Write a synthetic dataset in the ADE20K (ADEChallengeData2016) layout.

    Annotations are single-channel uint8 PNGs holding ADE20K label values:
    1 (``wall``) for the textured background, :data:`ADE20K_CLASSES` ids for
    the shapes and 0 ("other") for an optional 1-pixel ring on object
    edges. mmseg's ``ADE20KDataset`` (``reduce_zero_label=True``) reads them
    as classes ``id - 1`` and 255 (ignored).

    Args:
        root (str): Output root; the dataset goes to
            ``root/ADEChallengeData2016``.
        num_train (int): Training images, in [1, 100000]. Defaults to 32.
        num_val (int): Validation images, in [1, 100000]. Defaults to 8.
        img_size (int | tuple[int, int]): ``(height, width)`` (or one side),
            each in [32, 4096]. Defaults to (128, 128).
        max_objects (int): Objects per image are drawn from
            ``[1, max_objects]``, ``max_objects`` in [1, 16] (fewer when they
            do not fit without overlap). Defaults to 4.
        seed (int): Non-negative seed. Defaults to 0.
        ignore_boundary (bool): Label the inner 1-pixel edge of objects 0.
            Defaults to True.

    Returns:
        str: Path of the ``ADEChallengeData2016`` folder.
    """
    out, num_train, num_val, img_size, max_objects, seed = _start_dataset(
        root,
        'ADEChallengeData2016',
        'ade20k',
        num_train,
        num_val,
        img_size,
        max_objects,
        seed,
        ignore_boundary=bool(ignore_boundary))
    for split, tag, num in (('training', 'train', num_train),
                            ('validation', 'val', num_val)):
        img_dir = osp.join(out, 'images', split)
        ann_dir = osp.join(out, 'annotations', split)
        os.makedirs(img_dir)
        os.makedirs(ann_dir)
        for i, scene in _scenes('ade20k', split, num, img_size, max_objects,
                                seed):
            stem = f'ADE_{tag}_{i + 1:08d}'
            _write_jpg(osp.join(img_dir, stem + '.jpg'), scene.image)
            _write_png(
                osp.join(ann_dir, stem + '.png'),
                _ade_label_map(scene, ignore_boundary))
    return out


# ----------------------------------------------------------------------------
# PASCAL VOC
# ----------------------------------------------------------------------------
def _voc_xml(year: str, filename: str, scene: Scene) -> bytes:
    height, width = scene.image.shape[:2]
    ann = ET.Element('annotation')
    ET.SubElement(ann, 'folder').text = year
    ET.SubElement(ann, 'filename').text = filename
    source = ET.SubElement(ann, 'source')
    ET.SubElement(source, 'database').text = 'slak_mm synthetic'
    ET.SubElement(source, 'annotation').text = f'PASCAL {year}'
    ET.SubElement(source, 'image').text = 'synthetic'
    size = ET.SubElement(ann, 'size')
    for tag, val in (('width', width), ('height', height), ('depth', 3)):
        ET.SubElement(size, tag).text = str(val)
    ET.SubElement(ann, 'segmented').text = '0'
    for obj in scene.objects:
        node = ET.SubElement(ann, 'object')
        ET.SubElement(node, 'name').text = obj.cls.name
        ET.SubElement(node, 'pose').text = 'Unspecified'
        ET.SubElement(node, 'truncated').text = '0'
        ET.SubElement(node, 'difficult').text = '0'
        box = ET.SubElement(node, 'bndbox')
        # VOC boxes are 1-based inclusive pixel coordinates
        for tag, val in zip(('xmin', 'ymin', 'xmax', 'ymax'), obj.bbox):
            ET.SubElement(box, tag).text = str(val + 1)
    tree = ET.ElementTree(ann)
    ET.indent(tree, space='\t')
    return ET.tostring(ann, encoding='unicode').encode() + b'\n'


def generate_voc(root: str,
                 num_train: int = 32,
                 num_val: int = 8,
                 img_size: ImgSize = (160, 160),
                 max_objects: int = 4,
                 seed: int = 0) -> str:
    """Write a synthetic dataset in the PASCAL VOC (VOCdevkit) layout.

    ``VOC2007`` gets ``num_train`` images listed in
    ``ImageSets/Main/trainval.txt`` (ids ``000001``...) and ``num_val``
    images in ``ImageSets/Main/test.txt``; ``VOC2012`` gets ``num_train``
    images in ``trainval.txt`` (ids ``2012_000001``...). Object names are
    those of :data:`VOC_CLASSES`; boxes are 1-based inclusive pixel
    coordinates, as in VOC.

    Args:
        root (str): Output root; the dataset goes to ``root/VOCdevkit``.
        num_train (int): trainval images per year, in [1, 100000].
            Defaults to 32.
        num_val (int): VOC2007 test images, in [1, 100000]. Defaults to 8.
        img_size (int | tuple[int, int]): ``(height, width)`` (or one side),
            each in [32, 4096]. Defaults to (160, 160).
        max_objects (int): Objects per image are drawn from
            ``[1, max_objects]``, ``max_objects`` in [1, 16]. Defaults to 4.
        seed (int): Non-negative seed. Defaults to 0.

    Returns:
        str: Path of the ``VOCdevkit`` folder.
    """
    out, num_train, num_val, img_size, max_objects, seed = _start_dataset(
        root, 'VOCdevkit', 'voc', num_train, num_val, img_size, max_objects,
        seed)
    for year, splits in (('VOC2007', (('trainval', num_train), ('test',
                                                                num_val))),
                         ('VOC2012', (('trainval', num_train), ))):
        year_dir = osp.join(out, year)
        for sub in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
            os.makedirs(osp.join(year_dir, sub))
        prefix = '' if year == 'VOC2007' else '2012_'
        offset = 0
        for split, num in splits:
            ids = []
            for i, scene in _scenes('voc', f'{year}/{split}', num, img_size,
                                    max_objects, seed):
                img_id = f'{prefix}{offset + i + 1:06d}'
                ids.append(img_id)
                _write_jpg(
                    osp.join(year_dir, 'JPEGImages', img_id + '.jpg'),
                    scene.image)
                _write_bytes(
                    osp.join(year_dir, 'Annotations', img_id + '.xml'),
                    _voc_xml(year, img_id + '.jpg', scene))
            offset += num
            _write_bytes(
                osp.join(year_dir, 'ImageSets', 'Main', split + '.txt'),
                ''.join(f'{i}\n' for i in ids).encode())
    return out


# ----------------------------------------------------------------------------
# COCO
# ----------------------------------------------------------------------------
def _coco_images(scenes, first_img_id: int,
                 img_size: Tuple[int, int]) -> List[dict]:
    height, width = img_size
    return [
        dict(
            id=first_img_id + i,
            file_name=f'{first_img_id + i:012d}.jpg',
            height=height,
            width=width,
            license=0) for i, _ in scenes
    ]


def _coco_file(images: List[dict], annotations: List[dict],
               categories) -> dict:
    return dict(
        info=dict(
            description='slak_mm synthetic COCO-style dataset',
            version='1.0',
            year=2017),
        licenses=[dict(id=0, name='synthetic', url='')],
        images=images,
        annotations=annotations,
        categories=[dict(c) for c in categories])


def _coco_json(scenes, first_img_id: int, img_size: Tuple[int, int]) -> dict:
    annotations = []
    for i, scene in scenes:
        img_id = first_img_id + i
        for k, obj in enumerate(scene.objects):
            x0, y0, x1, y1 = obj.bbox
            poly = [float(v) for v in obj.polygon.reshape(-1)]
            annotations.append(
                dict(
                    id=img_id * 100 + k + 1,  # unique: <= 16 objects per image
                    image_id=img_id,
                    category_id=obj.cls.dataset_id,
                    segmentation=[poly],
                    area=float(obj.area),
                    bbox=[x0, y0, x1 - x0 + 1, y1 - y0 + 1],
                    iscrowd=0))
    return _coco_file(
        _coco_images(scenes, first_img_id, img_size), annotations,
        COCO_CATEGORIES)


def _stuff_map(scene: Scene) -> np.ndarray:
    """The COCO-Stuff label map HTC's semantic head reads
    (``stuffthingmaps``): COCO category id - 1 per pixel, things and
    stuff (the background is :data:`COCO_BACKGROUND`)."""
    label = np.full(scene.image.shape[:2], COCO_BACKGROUND.dataset_id - 1,
                    np.uint8)
    for obj in scene.objects:
        label[obj.mask] = obj.cls.dataset_id - 1
    return label


def _panoptic(scene: Scene, img_id: int) -> Tuple[np.ndarray, dict]:
    """The COCO panoptic PNG of a scene (RGB, segment id = R + 256 G +
    256^2 B; segment 1 is the background stuff, objects 2, 3, ...) and its
    ``annotations`` entry (``segments_info`` with category, box, area)."""
    ids = np.ones(scene.image.shape[:2], np.int32)
    for k, obj in enumerate(scene.objects):
        ids[obj.mask] = k + 2
    segments = []
    for seg_id, cls in enumerate(
        (COCO_BACKGROUND, ) + tuple(o.cls for o in scene.objects), 1):
        ys, xs = np.nonzero(ids == seg_id)
        if xs.size == 0:  # objects covering the whole image: no background
            continue
        x0, y0 = int(xs.min()), int(ys.min())
        segments.append(
            dict(
                id=seg_id,
                category_id=cls.dataset_id,
                iscrowd=0,
                bbox=[x0, y0,
                      int(xs.max()) - x0 + 1,
                      int(ys.max()) - y0 + 1],
                area=int(xs.size)))
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1)
    return rgb.astype(np.uint8), dict(
        image_id=img_id,
        file_name=f'{img_id:012d}.png',
        segments_info=segments)


def generate_coco(root: str,
                  num_train: int = 32,
                  num_val: int = 8,
                  img_size: ImgSize = (160, 160),
                  max_objects: int = 4,
                  seed: int = 0) -> str:
    """Write a synthetic dataset in the COCO 2017 instance, stuff and
    panoptic layouts.

    Writes ``annotations/instances_{train,val}2017.json`` and the images in
    ``train2017/`` and ``val2017/`` (file name = 12-digit image id; train
    ids start at 1, val ids at ``num_train + 1``). Annotations hold polygon
    ``segmentation`` (the exact drawn polygon; 64 vertices for ellipses),
    ``bbox`` ``[x, y, w, h]`` (tight box of the drawn pixels), ``area``
    (drawn pixels) and ``iscrowd`` 0; ``categories`` lists all 80 COCO
    categories with their real ids, and objects use those of
    :data:`COCO_CLASSES`. The same scenes are also written as HTC's
    COCO-Stuff maps (``stuffthingmaps/{train,val}2017/*.png``: category id
    - 1 per pixel, the background :data:`COCO_BACKGROUND`) and as COCO
    panoptic (``annotations/panoptic_{train,val}2017.json`` with the 133
    :data:`COCO_PANOPTIC_CATEGORIES`, and the segment PNGs in
    ``annotations/panoptic_{train,val}2017/``), as mmdet's ``CocoDataset``
    (``with_seg``) and ``CocoPanopticDataset`` read them.

    Args:
        root (str): Output root; the dataset goes to ``root/coco``.
        num_train (int): train2017 images, in [1, 100000]. Defaults to 32.
        num_val (int): val2017 images, in [1, 100000]. Defaults to 8.
        img_size (int | tuple[int, int]): ``(height, width)`` (or one side),
            each in [32, 4096]. Defaults to (160, 160).
        max_objects (int): Objects per image are drawn from
            ``[1, max_objects]``, ``max_objects`` in [1, 16]. Defaults to 4.
        seed (int): Non-negative seed. Defaults to 0.

    Returns:
        str: Path of the ``coco`` folder.
    """
    out, num_train, num_val, img_size, max_objects, seed = _start_dataset(
        root, 'coco', 'coco', num_train, num_val, img_size, max_objects, seed)
    os.makedirs(osp.join(out, 'annotations'))
    for split, num, first_id in (('train2017', num_train, 1),
                                 ('val2017', num_val, num_train + 1)):
        img_dir = osp.join(out, split)
        os.makedirs(img_dir)
        scenes = list(_scenes('coco', split, num, img_size, max_objects, seed))
        for i, scene in scenes:
            _write_jpg(
                osp.join(img_dir, f'{first_id + i:012d}.jpg'), scene.image)
        ann = _coco_json(scenes, first_id, img_size)
        _write_bytes(
            osp.join(out, 'annotations', f'instances_{split}.json'),
            json.dumps(ann).encode())
        _write_coco_stuff_and_panoptic(out, split, scenes, first_id, img_size)
    return out


def _write_coco_stuff_and_panoptic(out: str, split: str, scenes, first_id: int,
                                   img_size) -> None:
    """HTC's ``stuffthingmaps/SPLIT/`` and COCO panoptic's
    ``annotations/panoptic_SPLIT.json`` + ``annotations/panoptic_SPLIT/``
    for the scenes of one split."""
    stuff_dir = osp.join(out, 'stuffthingmaps', split)
    panoptic_dir = osp.join(out, 'annotations', f'panoptic_{split}')
    os.makedirs(stuff_dir)
    os.makedirs(panoptic_dir)
    annotations = []
    for i, scene in scenes:
        img_id = first_id + i
        _write_png(
            osp.join(stuff_dir, f'{img_id:012d}.png'), _stuff_map(scene))
        rgb, ann = _panoptic(scene, img_id)
        _write_png(osp.join(panoptic_dir, ann['file_name']), rgb[..., ::-1])
        annotations.append(ann)
    _write_bytes(
        osp.join(out, 'annotations', f'panoptic_{split}.json'),
        json.dumps(
            _coco_file(
                _coco_images(scenes, first_id, img_size), annotations,
                COCO_PANOPTIC_CATEGORIES)).encode())


# ----------------------------------------------------------------------------
# ImageNet (class folders)
# ----------------------------------------------------------------------------
def generate_imagenet(root: str,
                      num_train: int = 48,
                      num_val: int = 12,
                      img_size: ImgSize = (96, 96),
                      max_objects: int = 4,
                      seed: int = 0) -> str:
    """Write a synthetic dataset in the ImageNet class-folder layout.

    ``train/<wnid>/<wnid>_<n>.JPEG`` and
    ``val/<wnid>/ILSVRC2012_val_<n>.JPEG``, one folder per class of
    :data:`IMAGENET_CLASSES` (image ``i`` of a split shows 1..max_objects
    shapes of class ``i % 6``), as mmpretrain's ``CustomDataset`` reads
    them (labels in sorted folder order: the classes' ImageNet-1K labels),
    and ``meta/{train,val}.txt`` (``<wnid>/<file> <label>`` lines) as its
    ``ImageNet`` dataset reads them (1000 classes).

    Args:
        root (str): Output root; the dataset goes to ``root/imagenet``.
        num_train (int): Training images, in [1, 100000]. Defaults to 48.
        num_val (int): Validation images, in [1, 100000]. Defaults to 12.
        img_size (int | tuple[int, int]): ``(height, width)`` (or one side),
            each in [32, 4096]. Defaults to (96, 96).
        max_objects (int): Shapes per image are drawn from
            ``[1, max_objects]``, ``max_objects`` in [1, 16]. Defaults to 4.
        seed (int): Non-negative seed. Defaults to 0.

    Returns:
        str: Path of the ``imagenet`` folder.
    """
    out, num_train, num_val, img_size, max_objects, seed = _start_dataset(
        root, 'imagenet', 'imagenet', num_train, num_val, img_size,
        max_objects, seed)
    os.makedirs(osp.join(out, 'meta'))
    for split, num in (('train', num_train), ('val', num_val)):
        for cls in IMAGENET_CLASSES:
            os.makedirs(osp.join(out, split, cls.name))
        lines = []
        for i, scene in _scenes('imagenet', split, num, img_size, max_objects,
                                seed):
            cls = scene.objects[0].cls
            name = (f'{cls.name}_{i + 1}'
                    if split == 'train' else f'ILSVRC2012_val_{i + 1:08d}')
            _write_jpg(
                osp.join(out, split, cls.name, name + '.JPEG'), scene.image)
            lines.append(f'{cls.name}/{name}.JPEG {cls.dataset_id}\n')
        # ImageNet's own list ("path label", ImageNet-1K labels): what
        # mmpretrain's ImageNet dataset reads (its folder scan wants all
        # 1000 class folders)
        _write_bytes(
            osp.join(out, 'meta', f'{split}.txt'), ''.join(lines).encode())
    return out


_GENERATORS = dict(
    ade20k=generate_ade20k,
    voc=generate_voc,
    coco=generate_coco,
    imagenet=generate_imagenet)

#: What each generator writes: its folder under the root, the dataset
#: classes that read it, and the paths (relative to that folder) a
#: config's ``ann_file`` / ``data_prefix`` may name; ``*`` stands for one
#: path part.
SYNTHETIC_LAYOUTS = dict(
    ade20k=('ADEChallengeData2016', ('ADE20KDataset', ),
            ('images/training', 'images/validation', 'annotations/training',
             'annotations/validation')),
    voc=('VOCdevkit', ('VOCDataset', ),
         ('VOC2007', 'VOC2012', 'VOC2007/ImageSets/Main/trainval.txt',
          'VOC2007/ImageSets/Main/test.txt',
          'VOC2012/ImageSets/Main/trainval.txt', 'VOC2007/JPEGImages',
          'VOC2012/JPEGImages', 'VOC2007/Annotations', 'VOC2012/Annotations')),
    coco=('coco', ('CocoDataset', 'CocoPanopticDataset'),
          ('annotations/instances_train2017.json',
           'annotations/instances_val2017.json', 'train2017', 'val2017',
           'stuffthingmaps/train2017', 'stuffthingmaps/val2017',
           'annotations/panoptic_train2017.json',
           'annotations/panoptic_val2017.json',
           'annotations/panoptic_train2017', 'annotations/panoptic_val2017')),
    imagenet=('imagenet', ('CustomDataset', 'ImageNet'),
              ('train', 'val', 'meta/train.txt', 'meta/val.txt')))


def synthetic_kind(ds_type: str, paths: Sequence[str]) -> Optional[str]:
    """Which generator makes a dataset a config reads, if one does.

    Args:
        ds_type (str): The dataset's ``type`` (scope dropped).
        paths (Sequence[str]): The ``ann_file`` / ``data_prefix`` paths it
            reads, relative to its ``data_root``.

    Returns:
        str | None: ``'ade20k'``, ``'voc'``, ``'coco'`` or ``'imagenet'``
        (the ``--datasets`` name of ``tools/generate_synthetic_data.py``);
        None when no generator writes every one of the paths.
    """
    for kind, (_, types, written) in SYNTHETIC_LAYOUTS.items():
        if ds_type in types and all(
                osp.normpath(p) in written or p in ('', '.') for p in paths):
            return kind
    return None


def generate_all(root: str,
                 datasets: Sequence[str] = ('ade20k', 'voc', 'coco',
                                            'imagenet'),
                 num_train: Optional[int] = None,
                 num_val: Optional[int] = None,
                 img_size: Optional[ImgSize] = None,
                 max_objects: int = 4,
                 seed: int = 0) -> Dict[str, str]:
    """Write several synthetic datasets under one root.

    Args:
        root (str): Output root.
        datasets (Sequence[str]): Any of ``'ade20k'``, ``'voc'``,
            ``'coco'``, ``'imagenet'``. Defaults to all four.
        num_train (int, optional): Training images of each dataset; None
            uses each generator's default (32, 48 for ImageNet).
        num_val (int, optional): Validation/test images of each dataset;
            None uses each generator's default (8, 12 for ImageNet).
        img_size (int | tuple[int, int], optional): Image size of every
            dataset; None uses each generator's default (128x128 for
            ADE20K, 160x160 for VOC and COCO, 96x96 for ImageNet).
        max_objects (int): Upper bound of objects per image, in [1, 16].
            Defaults to 4.
        seed (int): Non-negative seed. Defaults to 0.

    Returns:
        dict[str, str]: Dataset name -> path of the folder written.
    """
    if isinstance(datasets, str):
        datasets = [datasets]
    unknown = [d for d in datasets if d not in _GENERATORS]
    if unknown or not datasets:
        raise ValueError(f'datasets must be a non-empty subset of '
                         f'{sorted(_GENERATORS)}, got {list(datasets)!r}')
    paths = {}
    for name in dict.fromkeys(datasets):
        kwargs = dict(_DEFAULTS[name])
        for key, val in (('num_train', num_train), ('num_val', num_val),
                         ('img_size', img_size)):
            if val is not None:
                kwargs[key] = val
        paths[name] = _GENERATORS[name](
            root, max_objects=max_objects, seed=seed, **kwargs)
    return paths
