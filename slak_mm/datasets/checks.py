"""Cheap checks of a dataset's files before a run.

:func:`check_dataset_files` reads what is small (annotation JSON and XML
files, folder listings, the first bytes of each segmentation map and of its
image) and stops with one line naming the file, the problem and the fix:

* segmentation (mmseg datasets with ``img_path`` / ``seg_map_path``): every
  image has its annotation file; every annotation file is a non-empty PNG
  (or another image format) whose header size is its image's;
* COCO JSON: the file parses (a parse error names the file); every
  annotation refers to an image of ``images`` and a category of
  ``categories``; every listed image file exists. Annotations mmdet would
  drop silently (boxes under 1 px or outside the image, area <= 0,
  categories outside the config's classes) are counted, and a summary
  (images, annotations kept, dropped per reason) is logged at the start.
  A split whose every annotation is dropped is an error;
* PASCAL VOC XML: every listed id has its XML and image file; each XML
  parses; each object has a known class name and a box with
  ``xmax > xmin`` and ``ymax > ymin``; a summary is logged as for COCO.

Nothing here decodes an image: checks that need the pixels (decoding,
the label values, the size of the decoded image) run where the pipeline
decodes anyway, in :mod:`slak_mm.datasets.transforms`.
"""
import json
import os
import os.path as osp
import re
import struct
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from mmengine.logging import print_log

from slak_mm.registry import init_default, is_subclass_named, registered_class

__all__ = [
    'DatasetError', 'check_dataset_files', 'dataset_classes',
    'image_size_from_header', 'leaf_dataset_cfgs', 'pipeline_transforms'
]

#: How many example files an error names at most.
MAX_NAMED = 5

# torch re-raises a DataLoader worker's exception as
# ``type("Caught T in DataLoader worker process N.\nOriginal Traceback...")``
_WORKER_WRAPPED = re.compile(
    r'^Caught \w+ (in DataLoader worker process \d+)\.\nOriginal Traceback')


class DatasetError(ValueError):
    """A damaged or inconsistent dataset file.

    The message is one line naming the file, the problem and the fix. When
    torch re-raises it from a DataLoader worker (wrapping the worker's
    traceback into the message), the original line is kept and the worker
    named after it, so the tools still print one line.

    Args:
        message (str): What is wrong, with the file's path.
    """

    def __init__(self, message: str) -> None:
        message = str(message)
        wrapped = _WORKER_WRAPPED.match(message)
        if wrapped:
            last = message.rstrip().splitlines()[-1]
            _, found, original = last.partition('DatasetError: ')
            if found:
                message = f'{original} ({wrapped.group(1)})'
        super().__init__(' '.join(message.split()))


def _examples(items: Sequence[Any]) -> str:
    shown = ', '.join(repr(i) for i in list(items)[:MAX_NAMED])
    more = len(items) - MAX_NAMED
    return shown + (f' and {more} more' if more > 0 else '')


def leaf_dataset_cfgs(node: Any) -> Iterator[dict]:
    """Leaf dataset configs inside wrappers (``ConcatDataset``'s
    ``datasets``, ``RepeatDataset``'s ``dataset``).

    Args:
        node (dict): A dataloader's ``dataset`` config.

    Yields:
        dict: Each dataset config that wraps no other.
    """
    if isinstance(node, dict):
        if 'datasets' in node:
            for child in node['datasets']:
                yield from leaf_dataset_cfgs(child)
        elif 'dataset' in node:
            yield from leaf_dataset_cfgs(node['dataset'])
        else:
            yield node


def pipeline_transforms(pipeline: Any) -> Iterator[dict]:
    """Every transform config of a pipeline, also those nested in a
    wrapper's ``transforms`` (``TestTimeAug``'s list of lists,
    ``RandomChoice``, ``RandomApply``, ``KeyMapper``).

    Args:
        pipeline (list): A dataset's ``pipeline`` config.

    Yields:
        dict: Each transform config, wrappers before what they wrap.
    """
    for item in pipeline or ():
        if isinstance(item, (list, tuple)):
            yield from pipeline_transforms(item)
        elif isinstance(item, dict):
            yield item
            yield from pipeline_transforms(item.get('transforms'))


def _dataset_class(ds_type: Any, scope: Optional[str]) -> Optional[type]:
    """The class a dataset config builds (None if not found)."""
    from mmengine.registry import DATASETS
    return registered_class(DATASETS, ds_type, scope)


def dataset_classes(ds: dict, scope: Optional[str]) -> Optional[tuple]:
    """The class names a dataset config yields: its ``metainfo.classes``,
    else those of the dataset class.

    Args:
        ds (dict): A leaf dataset config.
        scope (str, optional): The registry scope (``mmseg``, ``mmdet``).

    Returns:
        tuple[str] | None: The names, None where they cannot be found.
    """
    classes = (ds.get('metainfo') or {}).get('classes')
    if classes is None:
        cls = _dataset_class(ds.get('type'), scope)
        classes = (getattr(cls, 'METAINFO', None) or {}).get('classes')
    if isinstance(classes, str):  # a file of names (mmengine allows it)
        return None
    return tuple(classes) if classes is not None else None


def _join(root: str, path: Optional[str]) -> Optional[str]:
    """mmengine's prefix rule: a relative path is under ``data_root``."""
    if path is None:
        return None
    return path if not root or osp.isabs(path) else osp.join(root, path)


# ----------------------------------------------------------------------------
# image headers
# ----------------------------------------------------------------------------
#: First bytes of every PNG file.
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
#: First bytes of the image formats mm's decoders read.
IMAGE_MAGIC = (b'\xff\xd8\xff', PNG_MAGIC, b'BM', b'II*\x00', b'MM\x00*',
               b'RIFF', b'GIF8')
# JPEG start-of-frame markers (C4 DHT, C8 JPG and CC DAC are not frames)
_JPEG_SOF = {
    0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
    0xCF
}


def _jpeg_size(f) -> Optional[Tuple[int, int]]:
    """Walk the JPEG markers (seeking over segments) to the frame header."""
    f.seek(2)
    while True:
        byte = f.read(1)
        while byte == b'\xff':  # fill bytes before a marker code
            byte = f.read(1)
        if not byte:
            return None
        code = byte[0]
        if code == 0x01 or 0xD0 <= code <= 0xD8:  # markers without length
            continue
        raw = f.read(2)
        if len(raw) < 2:
            return None
        length = struct.unpack('>H', raw)[0]
        if code in _JPEG_SOF:
            frame = f.read(5)
            if len(frame) < 5:
                return None
            _, height, width = struct.unpack('>BHH', frame)
            return height, width
        if code in (0xD9, 0xDA) or length < 2:  # image data: no frame seen
            return None
        f.seek(length - 2, os.SEEK_CUR)
        if f.read(1) != b'\xff':
            return None


def image_size_from_header(path: str) -> Optional[Tuple[int, int]]:
    """``(height, width)`` read from a PNG or JPEG header, without decoding.

    Args:
        path (str): Image file.

    Returns:
        tuple[int, int] | None: The size; None for other formats or a
        header that cannot be read.
    """
    with open(path, 'rb') as f:
        return _size_from_head(f.read(24), f)


def _size_from_head(head: bytes, f) -> Optional[Tuple[int, int]]:
    """The size from a file's first 24 bytes (PNG) or its markers (JPEG,
    read on from the open file ``f``)."""
    if head.startswith(PNG_MAGIC) and head[12:16] == b'IHDR':
        width, height = struct.unpack('>II', head[16:24])
        return height, width
    if head.startswith(b'\xff\xd8'):
        return _jpeg_size(f)
    return None


def _files_under(folder: str, suffix: str) -> List[str]:
    """Files under ``folder`` ending in ``suffix``, relative, sorted (as
    mmengine's ``list_dir_or_file(recursive=True)`` yields them)."""
    found = []
    for parent, dirs, names in os.walk(folder):
        dirs.sort()
        rel = osp.relpath(parent, folder)
        for name in names:
            if name.endswith(suffix):
                found.append(name if rel == '.' else osp.join(rel, name))
    return sorted(found)


# ----------------------------------------------------------------------------
# segmentation
# ----------------------------------------------------------------------------
def _seg_pairs(ds: dict, cls: Optional[type]) -> List[Tuple[str, str]]:
    """(image, annotation) paths as mmseg's ``BaseSegDataset`` pairs them."""
    root = ds.get('data_root') or ''
    prefix = ds.get('data_prefix') or {}
    img_dir = _join(root, prefix.get('img_path') or '')
    ann_dir = _join(root, prefix.get('seg_map_path') or '')
    img_suffix = ds.get('img_suffix', init_default(cls, 'img_suffix', '.jpg'))
    seg_suffix = ds.get('seg_map_suffix',
                        init_default(cls, 'seg_map_suffix', '.png'))
    ann_file = _join(root, ds.get('ann_file') or '')
    if ann_file and osp.isfile(ann_file):
        with open(ann_file) as f:
            stems = [line.strip() for line in f if line.strip()]
    elif osp.isdir(img_dir):
        stems = [
            n[:-len(img_suffix)] for n in _files_under(img_dir, img_suffix)
        ]
    else:
        return []  # check_datasets names a missing folder
    return [(osp.join(img_dir,
                      stem + img_suffix), osp.join(ann_dir, stem + seg_suffix))
            for stem in stems]


def _check_seg_files(split: str, ds: dict, cls: Optional[type]) -> None:
    """Every image has a readable annotation file of its size."""
    where = f'{split} dataset ({ds.get("type")})'
    pairs = _seg_pairs(ds, cls)
    missing = [ann for _, ann in pairs if not osp.isfile(ann)]
    if missing:
        raise DatasetError(
            f'{where}: {len(missing)} of {len(pairs)} annotation files are '
            f'missing: {_examples(missing)}. Each image needs its label map '
            f'(same name, seg_map_suffix); add them or remove those images.')
    for img, ann in pairs:
        try:
            _check_seg_pair(where, img, ann)
        except OSError as err:  # unreadable: permissions, I/O error
            raise DatasetError(f'{where}: cannot read {err.filename!r} '
                               f'({err.strerror or err}).') from None


#: PNG colour types of one channel: grey and palette (a label map).
_ONE_CHANNEL_PNG = (0, 3)


def _check_seg_pair(where: str, img: str, ann: str) -> None:
    with open(ann, 'rb') as f:
        head = f.read(26)
        ann_size = _size_from_head(head, f)
    if not head:
        raise DatasetError(
            f'{where}: annotation {ann!r} is empty (0 bytes); replace it '
            f'with the label map of {img!r} or remove both files.')
    if not head.startswith(IMAGE_MAGIC):
        raise DatasetError(
            f'{where}: annotation {ann!r} is not an image (first bytes '
            f'{head[:8]!r}); a label map is a single-channel PNG of '
            f'class indices. Replace it or remove it and {img!r}.')
    if head.startswith(PNG_MAGIC) and len(head) == 26 and \
            head[25] not in _ONE_CHANNEL_PNG:
        raise DatasetError(
            f'{where}: annotation {ann!r} is a colour PNG (colour type '
            f'{head[25]}); a label map is one channel of class indices (a '
            f'grayscale or palette PNG). Convert or replace it.')
    if not osp.isfile(img):  # listed in ann_file without an image
        raise DatasetError(
            f'{where}: image {img!r} (listed in ann_file) is missing.')
    img_size = image_size_from_header(img)
    # an EXIF-rotated JPEG decodes transposed; the decode-time check in
    # CheckedLoadAnnotations compares the decoded sizes
    if ann_size and img_size and ann_size not in (img_size, img_size[::-1]):
        raise DatasetError(
            f'{where}: annotation {ann!r} is {ann_size[1]}x{ann_size[0]} '
            f'(WxH) but its image {img!r} is {img_size[1]}x{img_size[0]}; '
            f'a label map must have its image\'s size. Fix or remove the '
            f'pair.')


# ----------------------------------------------------------------------------
# COCO
# ----------------------------------------------------------------------------
def _load_json(path: str) -> Any:
    try:
        with open(path, 'rb') as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DatasetError(
            f'{path}: invalid JSON ({err.msg} at line {err.lineno} column '
            f'{err.colno}); the file is damaged or not a COCO annotation '
            f'file. Restore it.') from None
    except UnicodeDecodeError as err:
        raise DatasetError(f'{path}: invalid JSON (not UTF-8 text: {err}); '
                           f'restore the file.') from None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and value == value  # not NaN


def _summary(where: str, path: str, num_images: int, unit: str, kept: int,
             dropped: Counter) -> None:
    text = f'{where} {path}: {num_images} images, {kept} {unit} kept'
    if dropped:
        reasons = ', '.join(f'{reason}: {n}'
                            for reason, n in dropped.most_common())
        text += f', {sum(dropped.values())} dropped ({reasons})'
        print_log(text, logger='current', level=30)  # WARNING
    else:
        print_log(text + ', none dropped', logger='current')


def _require_kept(where: str, path: str, total: int, kept: int, unit: str,
                  dropped: Counter, test_mode: bool) -> None:
    """A split whose every annotation is dropped is an error (a test split
    without annotations at all, e.g. COCO test-dev, is not)."""
    if kept or (test_mode and not total):
        return
    reasons = ', '.join(f'{r}: {n}' for r, n in dropped.most_common())
    raise DatasetError(
        f'{where} {path}: none of its {total} {unit} is usable' +
        (f' (dropped: {reasons})' if reasons else '') +
        '; training or testing on it would only see empty images. Fix '
        'the annotations or the config\'s classes.')


def _check_coco(split: str, ds: dict, classes: Optional[tuple]) -> None:
    where = f'{split} dataset ({ds.get("type")})'
    root = ds.get('data_root') or ''
    path = _join(root, ds.get('ann_file'))
    if not path or not osp.isfile(path):
        return  # check_datasets names a missing ann_file
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get('images'), list):
        raise DatasetError(
            f'{path}: not a COCO annotation file (no "images" list); point '
            f'ann_file at instances_*.json.')
    images = {}
    for img in data['images']:
        if not isinstance(img, dict) or 'id' not in img or \
                'file_name' not in img or not all(
                    _number(img.get(k)) and img[k] > 0
                    for k in ('width', 'height')):
            raise DatasetError(
                f'{path}: an entry of "images" lacks "id", "file_name" or a '
                f'positive "width" and "height": {str(img)[:200]}')
        if img['id'] in images:
            raise DatasetError(
                f'{path}: image id {img["id"]!r} is listed twice in "images" '
                f'({images[img["id"]]["file_name"]!r} and '
                f'{img["file_name"]!r}); image ids must be unique.')
        images[img['id']] = img
    categories = {
        c.get('id'): c.get('name')
        for c in data.get('categories') or [] if isinstance(c, dict)
    }
    anns = data.get('annotations') or []
    no_image, no_category, malformed = [], Counter(), []
    dropped, kept, ann_ids = Counter(), 0, Counter()
    for ann in anns:
        if not isinstance(ann, dict) or 'image_id' not in ann or \
                'id' not in ann:
            malformed.append(str(ann)[:120])
            continue
        ann_ids[ann['id']] += 1
        if ann['image_id'] not in images:
            no_image.append(f'{ann.get("id")} -> {ann["image_id"]!r}')
            continue
        if ann.get('category_id') not in categories:
            no_category[ann.get('category_id')] += 1
            continue
        bbox = ann.get('bbox')
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
                and all(_number(v) for v in bbox)) or \
                not _number(ann.get('area')):
            malformed.append(f'id {ann.get("id")}: bbox {bbox!r}, area '
                             f'{ann.get("area")!r}')
            continue
        # the reasons mmdet's CocoDataset.parse_data_info skips one for
        img = images[ann['image_id']]
        x, y, w, h = bbox
        width, height = img.get('width'), img.get('height')
        if ann.get('ignore', False):
            dropped['marked "ignore"'] += 1
        elif w < 1 or h < 1:
            dropped['box width or height < 1 px'] += 1
        elif _number(width) and _number(height) and (
                min(x + w, width) - max(x, 0) <= 0
                or min(y + h, height) - max(y, 0) <= 0):
            dropped['box outside its image'] += 1
        elif ann['area'] <= 0:
            dropped['area <= 0'] += 1
        elif classes is not None and \
                categories[ann['category_id']] not in classes:
            dropped["category not among the config's classes"] += 1
        else:
            kept += 1
    if no_image:
        raise DatasetError(
            f'{path}: {len(no_image)} annotations refer to an image_id that '
            f'is not in "images" (annotation id -> image_id: '
            f'{_examples(no_image)}); '
            f'fix the ids or restore the images list.')
    if no_category:
        raise DatasetError(
            f'{path}: {sum(no_category.values())} annotations have a '
            f'category_id that is not in "categories" '
            f'(ids {_examples(sorted(no_category, key=str))}); fix the ids or '
            f'add the categories.')
    if malformed:
        raise DatasetError(
            f'{path}: {len(malformed)} annotations lack an id, an image_id, '
            f'a bbox of 4 numbers or a numeric area: {_examples(malformed)}.')
    twice = [i for i, n in ann_ids.items() if n > 1]
    if twice:
        raise DatasetError(
            f'{path}: annotation ids must be unique; {len(twice)} are used '
            f'more than once: {_examples(twice)}.')
    img_dir = _join(root, (ds.get('data_prefix') or {}).get('img') or '')
    if osp.isdir(img_dir):
        missing = [
            img['file_name'] for img in images.values()
            if not osp.isfile(osp.join(img_dir, img['file_name']))
        ]
        if missing:
            raise DatasetError(
                f'{path}: {len(missing)} of its {len(images)} images are not '
                f'in {img_dir!r}: {_examples(missing)}; restore them or '
                f'remove them from the JSON.')
    _summary(where, path, len(images), 'annotations', kept, dropped)
    _require_kept(where, path, len(anns), kept, 'annotations', dropped,
                  bool(ds.get('test_mode')))


# ----------------------------------------------------------------------------
# PASCAL VOC
# ----------------------------------------------------------------------------
def _voc_box(obj: ET.Element) -> Optional[List[float]]:
    box = obj.find('bndbox')
    if box is None:
        return None
    try:
        return [
            float(box.find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax')
        ]
    except (AttributeError, TypeError, ValueError):
        return None


def _check_xml(split: str, ds: dict, cls: Optional[type],
               classes: Optional[tuple]) -> None:
    where = f'{split} dataset ({ds.get("type")})'
    root = ds.get('data_root') or ''
    ann_file = _join(root, ds.get('ann_file'))
    if not ann_file or not osp.isfile(ann_file):
        return
    sub_root = _join(root, (ds.get('data_prefix')
                            or {}).get('sub_data_root', ''))
    ann_dir = osp.join(
        sub_root,
        ds.get('ann_subdir', init_default(cls, 'ann_subdir', 'Annotations')))
    img_dir = osp.join(
        sub_root,
        ds.get('img_subdir', init_default(cls, 'img_subdir', 'JPEGImages')))
    with open(ann_file) as f:
        ids = [line.strip() for line in f if line.strip()]
    # a subset of classes chosen in the config drops the other objects, as
    # mmdet does; with the dataset's own classes an unknown name is a typo
    subset = bool((ds.get('metainfo') or {}).get('classes'))
    missing = [
        osp.join(img_dir, i + '.jpg') for i in ids
        if not osp.isfile(osp.join(img_dir, i + '.jpg'))
    ]
    missing += [
        osp.join(ann_dir, i + '.xml') for i in ids
        if not osp.isfile(osp.join(ann_dir, i + '.xml'))
    ]
    if missing:
        raise DatasetError(
            f'{where} {ann_file}: {len(missing)} listed files are missing: '
            f'{_examples(missing)}; restore them or remove their ids from '
            f'the list.')
    total, kept, dropped = 0, 0, Counter()
    for i in ids:
        xml = osp.join(ann_dir, i + '.xml')
        try:
            tree = ET.parse(xml)
        except ET.ParseError as err:
            raise DatasetError(
                f'{xml}: invalid XML ({err}); the file is damaged. Restore '
                f'it or remove id {i!r} from {ann_file}.') from None
        size = tree.getroot().find('size')
        if size is not None:
            try:
                dims = [int(size.find(k).text) for k in ('width', 'height')]
            except (AttributeError, TypeError, ValueError):
                dims = [0]
            if min(dims) <= 0:
                raise DatasetError(
                    f'{xml}: <size> needs positive integer <width> and '
                    f'<height>; fix them or remove the <size> element.')
        for obj in tree.getroot().findall('object'):
            total += 1
            name_node = obj.find('name')
            name = None if name_node is None else name_node.text
            if classes is not None and name not in classes:
                if subset and name is not None:
                    dropped["class not among the config's classes"] += 1
                    continue
                raise DatasetError(
                    f'{xml}: object class {name!r} is not one of the '
                    f'dataset\'s {len(classes)} classes; fix the name or '
                    f'set metainfo=dict(classes=...) in the dataset config.')
            difficult = obj.find('difficult')
            try:  # mmdet reads int(difficult.text)
                int(difficult.text if difficult is not None else 0)
            except (TypeError, ValueError):
                raise DatasetError(
                    f'{xml}: object {name!r} has <difficult>'
                    f'{difficult.text}</difficult>; expected 0 or 1.'
                ) from None
            box = _voc_box(obj)
            if box is None:
                raise DatasetError(
                    f'{xml}: object {name!r} lacks a <bndbox> with numeric '
                    f'<xmin>, <ymin>, <xmax>, <ymax>.')
            if box[2] <= box[0] or box[3] <= box[1]:
                raise DatasetError(
                    f'{xml}: object {name!r} has an empty or inverted box '
                    f'(xmin, ymin, xmax, ymax = {box}); xmax must exceed '
                    f'xmin and ymax ymin. Fix or remove the object.')
            kept += 1
    _summary(where, ann_file, len(ids), 'objects', kept, dropped)
    _require_kept(where, ann_file, total, kept, 'objects', dropped,
                  bool(ds.get('test_mode')))


# ----------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------
def check_dataset_files(
    cfg: Any, splits: Sequence[str] = ('train', 'val', 'test')) -> None:
    """Check every annotation file of the config's datasets before a run.

    Reads annotation files and headers, never image pixels (see the module
    doc for what is checked). Detection datasets log one summary line each.

    Args:
        cfg (Config): The config (``{split}_dataloader`` entries).
        splits (Sequence[str]): Which dataloaders to check.

    Raises:
        DatasetError: One line naming the file, the problem and the fix.
    """
    scope = cfg.get('default_scope')
    seen = []  # test_dataloader = val_dataloader: one check, one summary
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for ds in leaf_dataset_cfgs(loader.get('dataset')):
            key = {k: v for k, v in ds.items() if k != 'pipeline'}
            if key in seen:
                continue
            seen.append(key)
            cls = _dataset_class(ds.get('type'), scope)
            prefix = ds.get('data_prefix') or {}
            if is_subclass_named(cls, 'mmdet', 'CocoDataset'):
                _check_coco(split, ds, dataset_classes(ds, scope))
            elif is_subclass_named(cls, 'mmdet', 'XMLDataset'):
                _check_xml(split, ds, cls, dataset_classes(ds, scope))
            elif 'seg_map_path' in prefix and prefix['seg_map_path']:
                _check_seg_files(split, ds, cls)
