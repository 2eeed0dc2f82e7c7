"""Cheap checks of a dataset's files before a run.

:func:`check_dataset_files` reads what is small (annotation JSON and XML
files, folder listings, the first bytes of each segmentation map and of its
image) and stops with one line naming the file, the problem and the fix:

* every split lists at least one image;
* segmentation (mmseg datasets with ``img_path`` / ``seg_map_path``): every
  image has its annotation file; every annotation file is a non-empty,
  one-channel PNG (or another lossless image format: JPEG data is refused)
  whose header size is its image's; a JPEG with an EXIF orientation that
  the image loader would apply (and the label map's would not) is refused;
* COCO JSON: the file parses (a parse error names the file); its
  sections, ids, names and numbers have the types pycocotools and mmdet
  use (ids are integers or strings, numbers finite); every annotation
  refers to an image of ``images`` and a category of ``categories``; every
  listed image file exists; every RLE mask has its image's size and counts
  that add up to it (read as numbers, never decoded); every polygon is
  numbers within an image size of its image; with a pipeline that loads
  masks, every annotation has a ``segmentation``;
* PASCAL VOC XML: every listed id has its XML and image file; each XML
  parses, without a DOCTYPE (no entity expansion); each object has a known
  class name and a box, as mmdet reads it, with ``xmax > xmin``,
  ``ymax > ymin`` and some part inside the image.

Detection datasets log a summary at the start, counted by mmdet's rules
(``parse_data_info``, ``filter_data``, ``LoadAnnotations``): images
yielded, instances kept, ignored (crowd, difficult, masks without a polygon
of 3 points, ...) and dropped, per reason; a WARNING when anything is
dropped. A split left without a usable instance is an error.

Nothing here decodes an image: checks that need the pixels (decoding,
the label values, the size of the decoded image) run where the pipeline
decodes anyway, in :mod:`slak_mm.datasets.transforms`.
"""
import json
import logging
import math
import os
import os.path as osp
import re
import struct
import xml.etree.ElementTree as ET
from collections import Counter
from typing import (Any, BinaryIO, Iterator, List, Optional, Sequence, Tuple,
                    Union)
from xml.parsers import expat

from mmengine.logging import print_log

from slak_mm.registry import init_default, is_subclass_named, registered_class
from .rle import rle_problem

__all__ = [
    'PNG_MAGIC', 'DatasetError', 'check_dataset_files', 'dataset_classes',
    'image_header', 'image_size_from_header', 'leaf_dataset_cfgs',
    'lossy_label_map_error', 'pipeline_transforms'
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


def _examples(items: Sequence[Any], quote: bool = True) -> str:
    shown = ('; ', ', ')[quote].join(
        repr(i) if quote else str(i) for i in list(items)[:MAX_NAMED])
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

#: The EXIF ``Orientation`` tag (1: as stored; 2-8: mirrored / rotated).
EXIF_ORIENTATION = 0x0112


def _exif_orientation(segment: bytes) -> int:
    """The ``Orientation`` of a JPEG APP1 segment (1 without EXIF or tag);
    Pillow's EXIF reader parses the TIFF structure inside."""
    if not segment.startswith(b'Exif\x00\x00'):
        return 1
    from PIL import Image
    exif = Image.Exif()
    try:
        exif.load(segment)
        value = exif.get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - damaged EXIF: the decoders skip it
        return 1
    return value if isinstance(value, int) else 1


def _jpeg_frame(f) -> Tuple[Optional[Tuple[int, int]], int]:
    """Walk the JPEG markers (seeking over segments) to the frame header:
    ``(height, width)`` (None if not found) and the EXIF orientation of an
    APP1 segment met on the way (1 if none)."""
    f.seek(2)
    orientation = 1
    while True:
        byte = f.read(1)
        while byte == b'\xff':  # fill bytes before a marker code
            byte = f.read(1)
        if not byte:
            return None, orientation
        code = byte[0]
        if code == 0x01 or 0xD0 <= code <= 0xD8:  # markers without length
            continue
        raw = f.read(2)
        if len(raw) < 2:
            return None, orientation
        length = struct.unpack('>H', raw)[0]
        if code in _JPEG_SOF:
            frame = f.read(5)
            if len(frame) < 5:
                return None, orientation
            _, height, width = struct.unpack('>BHH', frame)
            return (height, width), orientation
        if code in (0xD9, 0xDA) or length < 2:  # image data: no frame seen
            return None, orientation
        if code == 0xE1 and orientation == 1:  # APP1: EXIF
            orientation = _exif_orientation(f.read(length - 2))
        else:
            f.seek(length - 2, os.SEEK_CUR)
        if f.read(1) != b'\xff':
            return None, orientation


def image_header(
        source: Union[str, BinaryIO]) -> Tuple[Optional[Tuple[int, int]], int]:
    """Size and EXIF orientation read from a PNG or JPEG header, without
    decoding.

    Args:
        source (str | file): Image file, or its bytes as a seekable binary
            stream (read from the start).

    Returns:
        tuple: ``(height, width)`` as stored (None for other formats or a
        header that cannot be read) and the EXIF ``Orientation`` (1: none;
        5-8 decode transposed where the loader applies it).
    """
    if isinstance(source, str):
        with open(source, 'rb') as f:
            return image_header(f)
    source.seek(0)
    head = source.read(24)
    if head.startswith(PNG_MAGIC) and head[12:16] == b'IHDR' and \
            len(head) == 24:
        width, height = struct.unpack('>II', head[16:24])
        return (height, width), 1
    if head.startswith(b'\xff\xd8'):
        return _jpeg_frame(source)
    return None, 1


def image_size_from_header(path: str) -> Optional[Tuple[int, int]]:
    """``(height, width)`` read from a PNG or JPEG header, without decoding.

    Args:
        path (str): Image file.

    Returns:
        tuple[int, int] | None: The size as stored; None for other formats
        or a header that cannot be read.
    """
    return image_header(path)[0]


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
def _seg_pairs(ds: dict, cls: Optional[type]) -> Tuple[str, Optional[list]]:
    """(image, annotation) paths as mmseg's ``BaseSegDataset`` pairs them,
    and where it takes the list from (for a message); None for a missing
    folder (check_datasets names it)."""
    root = ds.get('data_root') or ''
    prefix = ds.get('data_prefix') or {}
    img_dir = _join(root, prefix.get('img_path') or '')
    ann_dir = _join(root, prefix.get('seg_map_path') or '')
    img_suffix = ds.get('img_suffix', init_default(cls, 'img_suffix', '.jpg'))
    seg_suffix = ds.get('seg_map_suffix',
                        init_default(cls, 'seg_map_suffix', '.png'))
    ann_file = _join(root, ds.get('ann_file') or '')
    if ann_file and osp.isfile(ann_file):
        source = f'ann_file {ann_file!r}'
        with open(ann_file) as f:
            stems = [line.strip() for line in f if line.strip()]
    elif osp.isdir(img_dir):
        source = f'{img_dir!r} (files ending in {img_suffix!r})'
        stems = [
            n[:-len(img_suffix)] for n in _files_under(img_dir, img_suffix)
        ]
    else:
        return '', None
    return source, [(osp.join(img_dir, stem + img_suffix),
                     osp.join(ann_dir, stem + seg_suffix)) for stem in stems]


def _empty_split(where: str, source: str) -> DatasetError:
    return DatasetError(
        f'{where}: no images in {source}; an empty split trains or tests on '
        f'nothing. Point data_root / data_prefix / ann_file at the split\'s '
        f'images (or remove the dataloader).')


def _loader_applies_exif(ds: dict) -> bool:
    """Whether the dataset's image loader turns a JPEG by its EXIF
    orientation: mmcv's ``imfrombytes`` does with ``color_type`` 'color' or
    'grayscale' on the cv2 and pillow backends (label maps, read
    'unchanged', are never turned). Without a loader in the config: the
    default, yes."""
    for node in pipeline_transforms(ds.get('pipeline')):
        kind = node.get('type')
        name = kind.split('.')[-1] if isinstance(kind, str) else getattr(
            kind, '__name__', '')
        if name.endswith('LoadImageFromFile'):
            return node.get('color_type',
                            'color') in ('color', 'grayscale') and node.get(
                                'imdecode_backend', 'cv2') in ('cv2', 'pillow')
    return True


def _check_seg_files(split: str, ds: dict, cls: Optional[type]) -> None:
    """Every image has a readable annotation file of its size."""
    where = f'{split} dataset ({ds.get("type")})'
    source, pairs = _seg_pairs(ds, cls)
    if pairs is None:
        return
    if not pairs:
        raise _empty_split(where, source)
    missing = [ann for _, ann in pairs if not osp.isfile(ann)]
    if missing:
        raise DatasetError(
            f'{where}: {len(missing)} of {len(pairs)} annotation files are '
            f'missing: {_examples(missing)}. Each image needs its label map '
            f'(same name, seg_map_suffix); add them or remove those images.')
    exif = _loader_applies_exif(ds)
    for img, ann in pairs:
        try:
            _check_seg_pair(where, img, ann, exif)
        except OSError as err:  # unreadable: permissions, I/O error
            raise DatasetError(f'{where}: cannot read {err.filename!r} '
                               f'({err.strerror or err}).') from None


#: PNG colour types of one channel: grey and palette (a label map).
_ONE_CHANNEL_PNG = (0, 3)
#: First bytes of every JPEG file.
JPEG_MAGIC = b'\xff\xd8\xff'


def lossy_label_map_error(path: str) -> DatasetError:
    """The error for a label map stored as JPEG (lossy: class indices
    change along region borders), whatever its file name says.

    Args:
        path (str): The label map.

    Returns:
        DatasetError: One line naming the file and the fix.
    """
    named = ' under a .png name' if path.lower().endswith('.png') else ''
    return DatasetError(
        f'annotation {path!r} holds JPEG data{named}: JPEG is lossy and '
        f'changes class indices along region borders. Re-create the label '
        f'map as a PNG from its source (converting this file keeps the '
        f'damage).')


#: How each EXIF orientation turns the stored pixels (values 2-8).
_EXIF_TURNS = {
    2: 'mirrored',
    3: 'rotated 180 degrees',
    4: 'flipped',
    5: 'transposed',
    6: 'rotated 90 degrees',
    7: 'transverse',
    8: 'rotated 270 degrees'
}


def _check_seg_pair(where: str, img: str, ann: str, exif: bool) -> None:
    with open(ann, 'rb') as f:
        head = f.read(26)
    if not head:
        raise DatasetError(
            f'{where}: annotation {ann!r} is empty (0 bytes); replace it '
            f'with the label map of {img!r} or remove both files.')
    if not head.startswith(IMAGE_MAGIC):
        raise DatasetError(
            f'{where}: annotation {ann!r} is not an image (first bytes '
            f'{head[:8]!r}); a label map is a single-channel PNG of '
            f'class indices. Replace it or remove it and {img!r}.')
    if head.startswith(JPEG_MAGIC):
        raise DatasetError(f'{where}: {lossy_label_map_error(ann)}')
    if head.startswith(PNG_MAGIC) and len(head) == 26 and \
            head[25] not in _ONE_CHANNEL_PNG:
        raise DatasetError(
            f'{where}: annotation {ann!r} is a colour PNG (colour type '
            f'{head[25]}); a label map is one channel of class indices (a '
            f'grayscale or palette PNG). Convert or replace it.')
    if not osp.isfile(img):  # listed in ann_file without an image
        raise DatasetError(
            f'{where}: image {img!r} (listed in ann_file) is missing.')
    img_size, orientation = image_header(img)
    # the image loader applies EXIF, the label map's loader does not: which
    # of the two orientations the map was drawn in only its maker knows
    if exif and orientation in _EXIF_TURNS:
        raise DatasetError(
            f'{where}: image {img!r} has EXIF Orientation={orientation} '
            f'({_EXIF_TURNS[orientation]}): the image loader turns it, but '
            f'not its label map {ann!r}, so they would not line up. Rotate '
            f'the pixels and remove the tag (PIL ImageOps.exif_transpose) '
            f'or only remove the tag (exiftool -Orientation= FILE), to match '
            f'the label map; or load images with color_type='
            f'\'color_ignore_orientation\'.')
    ann_size = image_header(ann)[0]
    if ann_size and img_size and ann_size != img_size:
        raise DatasetError(
            f'{where}: annotation {ann!r} is {ann_size[1]}x{ann_size[0]} '
            f'(WxH) but its image {img!r} is {img_size[1]}x{img_size[0]}; '
            f'a label map must have its image\'s size. Fix or remove the '
            f'pair.')


# ----------------------------------------------------------------------------
# detection: what mmdet yields
# ----------------------------------------------------------------------------
#: Reasons to ignore an instance that are the dataset's conventions or the
#: config's choice (said in the summary, no WARNING), by their start.
_ROUTINE_IGNORED = ('crowd (iscrowd)', 'difficult',
                    'box under filter_cfg.bbox_min_size')


class _Tally:
    """What a detection dataset yields, counted by mmdet's rules.

    Args:
        unit (str): What an instance is called (``annotations``,
            ``objects``).
    """

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.listed = 0  # images in the annotation file
        self.images = 0  # images left after mmdet's filter_data
        self.total = 0  # instances in the annotation file
        self.kept = 0  # trained on (data_sample.gt_instances)
        self.ignored = Counter()  # data_sample.ignored_instances, by reason
        self.dropped = Counter()  # never yielded, by reason
        self.parts_dropped = 0  # polygons left out of a kept mask

    def log(self, where: str, path: str) -> None:
        """Log the summary line (a WARNING when something was dropped or
        ignored for a reason other than the dataset's conventions)."""
        text = f'{where} {path}: {self.images} images'
        if self.listed != self.images:
            text += (f' ({self.listed - self.images} of {self.listed} left '
                     f'out by filter_cfg)')
        text += f', {self.kept} {self.unit} kept'
        if self.ignored:
            text += (f', {sum(self.ignored.values())} ignored '
                     f'({_reasons(self.ignored)})')
        if self.dropped:
            text += (f', {sum(self.dropped.values())} dropped '
                     f'({_reasons(self.dropped)})')
        else:
            text += ', none dropped'
        if self.parts_dropped:
            text += (f'; {self.parts_dropped} mask polygons of < 3 points '
                     f'left out of their masks')
        warn = self.dropped or self.parts_dropped or any(
            not r.startswith(_ROUTINE_IGNORED) for r in self.ignored)
        print_log(
            text,
            logger='current',
            level=logging.WARNING if warn else logging.INFO)

    def require_usable(self, where: str, path: str, test_mode: bool) -> None:
        """An empty split, or one whose every instance is dropped or
        ignored, is an error (a test split without annotations at all,
        e.g. COCO test-dev, is not)."""
        if not self.listed:
            raise DatasetError(
                f'{where} {path}: lists no images; an empty split trains or '
                f'tests on nothing. Point ann_file at the split\'s '
                f'annotations (or remove the dataloader).')
        if not self.images:
            raise DatasetError(
                f'{where} {path}: filter_cfg leaves none of its '
                f'{self.listed} images (filter_empty_gt: images without '
                f'{self.unit} of the config\'s classes; min_size). Fix the '
                f'annotations, the classes or filter_cfg.')
        if self.kept or (test_mode and not self.total):
            return
        left_out = self.dropped + self.ignored
        reasons = f' (dropped or ignored: {_reasons(left_out)})' \
            if left_out else ''
        raise DatasetError(
            f'{where} {path}: none of its {self.total} {self.unit} is '
            f'usable{reasons}; training or testing on it would only see '
            f'empty images. Fix the annotations or the config\'s classes.')


def _reasons(counts: Counter) -> str:
    return ', '.join(f'{reason}: {n}' for reason, n in counts.most_common())


def _filter_cfg(ds: dict) -> dict:
    """The ``filter_cfg`` mmdet's ``filter_data`` applies (none in
    test mode)."""
    return {} if ds.get('test_mode') else dict(ds.get('filter_cfg') or {})


def _mask_loader(ds: dict, scope: Optional[str]) -> Any:
    """The pipeline's mmdet ``LoadAnnotations`` if it loads masks, built
    from its config (so its own rule for invalid masks can be applied),
    else None."""
    from mmengine.registry import TRANSFORMS
    for node in pipeline_transforms(ds.get('pipeline')):
        cls = registered_class(TRANSFORMS, node.get('type'), scope)
        if node.get('with_mask') and is_subclass_named(cls, 'mmdet',
                                                       'LoadAnnotations'):
            return cls(**{k: v for k, v in node.items() if k != 'type'})
    return None


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
    except (ValueError, RecursionError) as err:
        # json's own limits (found by tests/test_fuzz.py): a number of more
        # than 4300 digits (ValueError), nesting deeper than the recursion
        # limit (RecursionError)
        why = 'nested too deeply' if isinstance(err, RecursionError) else err
        raise DatasetError(f'{path}: invalid JSON ({why}); the file is '
                           f'damaged or not a COCO annotation file. Restore '
                           f'it.') from None


def _number(value: Any) -> bool:
    """A finite number of 64 bits: JSON allows NaN, infinities and longer
    integers, which mmdet's tensors do not (a box of 2**64 stopped the
    pipeline with a bare ValueError; found by tests/test_fuzz.py)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and \
        -2**63 <= value < 2**63


def _is_id(value: Any) -> bool:
    """An id as COCO files hold them: an integer (or a string), which
    pycocotools and mmdet use as dict keys."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _coco_sections(path: str, data: Any) -> None:
    """The file is an object with an "images" list and a "categories"
    list, and "annotations" is a list where it is given (pycocotools and
    mmdet iterate them: anything else stops them with a bare TypeError or
    KeyError)."""
    if not isinstance(data, dict) or not isinstance(data.get('images'), list):
        raise DatasetError(
            f'{path}: not a COCO annotation file (no "images" list); point '
            f'ann_file at instances_*.json.')
    for key in ('categories', 'annotations'):
        if not isinstance(data.get(key, key == 'annotations' and []), list):
            state = 'not a list' if key in data else 'missing'
            raise DatasetError(
                f'{path}: "{key}" is {state}; a COCO annotation file holds a '
                f'list of {key}. Restore the file.')


def _coco_categories(path: str, data: dict) -> dict:
    """``categories`` as id -> name; entries pycocotools / mmdet stop on,
    and ids listed twice (mmdet would give both names one label), are
    named."""
    categories = {}
    for cat in data['categories']:
        if not isinstance(cat, dict) or not _is_id(cat.get('id')) or \
                not isinstance(cat.get('name'), str):
            raise DatasetError(
                f'{path}: an entry of "categories" lacks an integer "id" or '
                f'a "name" string: {str(cat)[:200]}')
        if cat['id'] in categories:
            raise DatasetError(
                f'{path}: category id {cat["id"]!r} is listed twice in '
                f'"categories" ({categories[cat["id"]]!r} and '
                f'{cat["name"]!r}); category ids must be unique.')
        categories[cat['id']] = cat['name']
    return categories


def _coco_images(path: str, data: Any) -> dict:
    """``images`` by id; entries mmdet stops on are named."""
    _coco_sections(path, data)
    images = {}
    for img in data['images']:
        if not isinstance(img, dict) or not _is_id(img.get('id')) or \
                not isinstance(img.get('file_name'), str) or not all(
                    _number(img.get(k)) and img[k] > 0
                    for k in ('width', 'height')):
            raise DatasetError(
                f'{path}: an entry of "images" lacks an integer "id", a '
                f'"file_name" string or a positive "width" and "height": '
                f'{str(img)[:200]}')
        if img['id'] in images:
            raise DatasetError(
                f'{path}: image id {img["id"]!r} is listed twice in "images" '
                f'({images[img["id"]]["file_name"]!r} and '
                f'{img["file_name"]!r}); image ids must be unique.')
        images[img['id']] = img
    return images


def _coco_annotations(path: str, anns: list, images: dict,
                      categories: dict) -> None:
    """Every annotation refers to a listed image and category, has a
    unique id, a bbox of 4 numbers and a numeric area (mmdet stops on
    these with a bare ``KeyError`` / ``AssertionError``)."""
    no_image, no_category, malformed = [], Counter(), []
    ann_ids = Counter()
    for ann in anns:
        if not isinstance(ann, dict) or not all(
                _is_id(ann.get(k)) for k in ('id', 'image_id', 'category_id')):
            malformed.append(str(ann)[:120])
            continue
        ann_ids[ann['id']] += 1
        if ann['image_id'] not in images:
            no_image.append(f'{ann.get("id")} -> {ann["image_id"]!r}')
        elif ann['category_id'] not in categories:
            no_category[ann['category_id']] += 1
        elif not (isinstance(ann.get('bbox'), (list, tuple))
                  and len(ann['bbox']) == 4 and all(
                      _number(v) for v in ann['bbox'])) or \
                not _number(ann.get('area')):
            malformed.append(f'id {ann.get("id")}: bbox {ann.get("bbox")!r}, '
                             f'area {ann.get("area")!r}')
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
            f'{path}: {len(malformed)} annotations lack an integer id, '
            f'image_id or category_id, a bbox of 4 numbers or a numeric '
            f'area: {_examples(malformed)}.')
    twice = [i for i, n in ann_ids.items() if n > 1]
    if twice:
        raise DatasetError(
            f'{path}: annotation ids must be unique; {len(twice)} are used '
            f'more than once: {_examples(twice)}.')


def _coco_drop_reason(ann: dict, img: dict, category: str,
                      classes: Optional[tuple]) -> Optional[str]:
    """Why mmdet's ``CocoDataset.parse_data_info`` leaves an annotation out
    (None: it keeps it). Its rule, written again because it returns the
    kept instances without saying which annotation it left out or why
    (tests/test_dataset_checks.py holds the two to the same counts)."""
    x, y, w, h = ann['bbox']
    if ann.get('ignore', False):
        return 'marked "ignore"'
    if w < 1 or h < 1:
        return 'box width or height < 1 px'
    if min(x + w, img['width']) - max(x, 0) <= 0 or \
            min(y + h, img['height']) - max(y, 0) <= 0:
        return 'box outside its image'
    if ann['area'] <= 0:
        return 'area <= 0'
    if classes is not None and category not in classes:
        return "category not among the config's classes"
    return None


def _segmentation_problem(ann: dict, img: dict) -> Optional[str]:
    """What is wrong with an annotation's ``segmentation`` (a list of
    polygons or an RLE dict), read without decoding it."""
    segmentation = ann.get('segmentation')
    if isinstance(segmentation, dict):
        return rle_problem(segmentation, img['height'], img['width'])
    if segmentation and not (isinstance(segmentation, list) and all(
            isinstance(p, list) for p in segmentation)):
        return ('"segmentation" is neither a list of polygons [[x1, y1, '
                'x2, y2, ...], ...] nor an RLE dict')
    for polygon in segmentation or ():
        problem = _polygon_problem(polygon, img['height'], img['width'])
        if problem:
            return problem
    return None


def _polygon_problem(polygon: list, height: float,
                     width: float) -> Optional[str]:
    """What is wrong with one polygon ``[x1, y1, x2, y2, ...]``: values
    that are not finite numbers, or points more than an image size outside
    the image. pycocotools rasterizes the whole outline, with memory in
    proportion to its length: a point at x = 1e308 crashed it (found by
    tests/test_fuzz.py)."""
    if not all(_number(v) for v in polygon):
        return ('a polygon is not a flat list of finite numbers [x1, y1, '
                'x2, y2, ...]')
    xs, ys = polygon[0::2], polygon[1::2]
    if xs and not (-width <= min(xs) and max(xs) <= 2 * width) or \
            ys and not (-height <= min(ys) and max(ys) <= 2 * height):
        return (f'a polygon spans x {min(xs)}..{max(xs)}, y {min(ys)}..'
                f'{max(ys)}, more than an image size outside its '
                f'{width}x{height} (WxH) image')
    return None


#: Annotations handed to ``_process_masks`` at once (its polygon arrays
#: of a whole COCO split would take hundreds of MB).
_MASK_CHUNK = 1024


def _count_masks(path: str, loader: Any, anns: list, images: dict,
                 tally: _Tally) -> None:
    """Apply the pipeline's ``LoadAnnotations._process_masks`` (mmdet's
    rule: polygons of < 3 points are left out of a mask, an instance with
    none left is ignored) to the kept annotations, and count it."""

    def named(ann: dict) -> str:
        return f'id {ann["id"]} ({images[ann["image_id"]]["file_name"]})'

    missing = [named(a) for a in anns if not a.get('segmentation')]
    if missing:  # mmdet: KeyError 'mask'
        raise DatasetError(
            f'{path}: {len(missing)} annotations have no "segmentation" but '
            f'the pipeline loads masks (LoadAnnotations with_mask=True): '
            f'{_examples(missing, quote=False)}; add their polygons, remove '
            f'them, or train a model without masks.')
    for start in range(0, len(anns), _MASK_CHUNK):
        chunk = anns[start:start + _MASK_CHUNK]
        results = dict(instances=[
            dict(
                mask=a['segmentation'],
                ignore_flag=int(bool(a.get('iscrowd', False)))) for a in chunk
        ])
        masks = loader._process_masks(results)
        for ann, mask, ignore in zip(chunk, masks, results['gt_ignore_flags']):
            polygons = isinstance(ann['segmentation'], list)
            if ann.get('iscrowd', False):
                tally.ignored['crowd (iscrowd)'] += 1
            elif ignore:
                tally.ignored['mask: no polygon of >= 3 points' if polygons
                              else 'mask: RLE with poly2mask=False'] += 1
            else:
                tally.kept += 1
                if polygons:
                    tally.parts_dropped += len(ann['segmentation']) - len(mask)


def _check_segmentations(path: str, anns: list, images: dict) -> None:
    """Every ``segmentation`` is polygons or a valid RLE (read, never
    decoded): refused by annotation id before mmdet decodes it."""
    damaged = []
    for ann in anns:
        img = images[ann['image_id']]
        problem = _segmentation_problem(ann, img)
        if problem:
            damaged.append(f'id {ann["id"]} ({img["file_name"]}): {problem}')
    if damaged:
        raise DatasetError(
            f'{path}: {len(damaged)} annotations have a damaged '
            f'"segmentation": {_examples(damaged, quote=False)}. An RLE\'s '
            f'"size" is its image\'s [height, width] and its "counts" add up '
            f'to height x width; restore them or remove the annotations.')


def _coco_tally(path: str, ds: dict, images: dict, categories: dict,
                anns: list, classes: Optional[tuple],
                scope: Optional[str]) -> _Tally:
    """Count what mmdet's ``CocoDataset`` and the pipeline's
    ``LoadAnnotations`` make of the (checked) annotations."""
    tally = _Tally('annotations')
    tally.listed, tally.total = len(images), len(anns)
    # mmdet's CocoDataset.filter_data: an image is kept with an annotation
    # (any, also one parse_data_info leaves out) of the classes' categories
    filter_cfg = _filter_cfg(ds)
    wanted = {
        i
        for i, name in categories.items() if classes is None or name in classes
    }
    with_ann = {a['image_id'] for a in anns if a['category_id'] in wanted}
    kept_images = {
        i
        for i, img in images.items()
        if (not filter_cfg.get('filter_empty_gt') or i in with_ann)
        and min(img['width'], img['height']) >= filter_cfg.get('min_size', 0)
    }
    tally.images = len(kept_images)
    parsed = []
    for ann in anns:
        img = images[ann['image_id']]
        reason = _coco_drop_reason(ann, img, categories[ann['category_id']],
                                   classes)
        if reason is None and ann['image_id'] not in kept_images:
            reason = 'its image is under filter_cfg.min_size'
        if reason:
            tally.dropped[reason] += 1
        else:
            parsed.append(ann)
    loader = _mask_loader(ds, scope)
    if loader is not None:
        _count_masks(path, loader, parsed, images, tally)
    else:
        crowd = sum(bool(a.get('iscrowd', False)) for a in parsed)
        if crowd:
            tally.ignored['crowd (iscrowd)'] = crowd
        tally.kept = len(parsed) - crowd
    return tally


def _check_coco(split: str, ds: dict, classes: Optional[tuple],
                scope: Optional[str]) -> None:
    where = f'{split} dataset ({ds.get("type")})'
    root = ds.get('data_root') or ''
    path = _join(root, ds.get('ann_file'))
    if not path or not osp.isfile(path):
        return  # check_datasets names a missing ann_file
    data = _load_json(path)
    images = _coco_images(path, data)
    categories = _coco_categories(path, data)
    anns = data.get('annotations') or []
    _coco_annotations(path, anns, images, categories)
    _check_segmentations(path, anns, images)
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
    tally = _coco_tally(path, ds, images, categories, anns, classes, scope)
    tally.log(where, path)
    tally.require_usable(where, path, bool(ds.get('test_mode')))


# ----------------------------------------------------------------------------
# PASCAL VOC
# ----------------------------------------------------------------------------
def _parse_xml(path: str) -> ET.ElementTree:
    """``ET.parse``, after a scan that refuses a DOCTYPE: VOC annotations
    have none, and the entities one declares expand, in Python's expat, to
    tens of MB from a few hundred bytes ("billion laughs", found by
    tests/test_fuzz.py)."""
    with open(path, 'rb') as f:
        data = f.read()

    def no_doctype(name, *_):
        raise ET.ParseError(
            f'a DOCTYPE ({name!r}); VOC annotations have none, and the '
            f'entities of one can expand to far more than the file')

    scan = expat.ParserCreate()
    scan.StartDoctypeDeclHandler = no_doctype
    scan.Parse(data, True)
    return ET.ElementTree(ET.fromstring(data))


def _voc_box(obj: ET.Element) -> Optional[List[int]]:
    """The box as mmdet's ``XMLDataset`` reads it: ``int(float(text))``,
    minus 1 (VOC counts pixels from 1)."""
    box = obj.find('bndbox')
    if box is None:
        return None
    try:
        return [
            int(float(box.find(k).text)) - 1
            for k in ('xmin', 'ymin', 'xmax', 'ymax')
        ]
    except (AttributeError, TypeError, ValueError, OverflowError):
        return None


def _voc_size(xml: str, tree: ET.ElementTree,
              img: str) -> Optional[Tuple[int, int]]:
    """``(height, width)`` as mmdet's ``XMLDataset`` takes it: from
    ``<size>``, else from the decoded image (here its header, turned as
    mmcv's loader turns it by EXIF)."""
    size = tree.getroot().find('size')
    if size is None:
        shape, orientation = image_header(img)
        return shape[::-1] if shape and orientation >= 5 else shape
    try:
        width, height = [int(size.find(k).text) for k in ('width', 'height')]
    except (AttributeError, TypeError, ValueError):
        width = height = 0
    if min(width, height) <= 0:
        raise DatasetError(f'{xml}: <size> needs positive integer <width> and '
                           f'<height>; fix them or remove the <size> element.')
    return height, width


def _voc_objects(xml: str, tree: ET.ElementTree, size: Optional[tuple],
                 classes: Optional[tuple], subset: bool, bbox_min_size: Any,
                 tally: _Tally) -> Counter:
    """Check and count one XML's objects as mmdet's ``XMLDataset`` parses
    them; returns the counts of its instances (``kept``, ``ignored``
    reasons)."""
    found = Counter()
    for obj in tree.getroot().findall('object'):
        tally.total += 1
        name_node = obj.find('name')
        name = None if name_node is None else name_node.text
        if classes is not None and name not in classes:
            if subset and name is not None:
                tally.dropped["class not among the config's classes"] += 1
                continue
            raise DatasetError(
                f'{xml}: object class {name!r} is not one of the '
                f'dataset\'s {len(classes)} classes; fix the name or '
                f'set metainfo=dict(classes=...) in the dataset config.')
        difficult = obj.find('difficult')
        try:  # mmdet reads int(difficult.text)
            difficult = int(difficult.text if difficult is not None else 0)
        except (TypeError, ValueError):
            raise DatasetError(
                f'{xml}: object {name!r} has <difficult>'
                f'{difficult.text}</difficult>; expected 0 or 1.') from None
        box = _voc_box(obj)
        if box is None:
            raise DatasetError(
                f'{xml}: object {name!r} lacks a <bndbox> with numeric '
                f'<xmin>, <ymin>, <xmax>, <ymax>.')
        x1, y1, x2, y2 = box
        if x2 <= x1 or y2 <= y1:
            raise DatasetError(
                f'{xml}: object {name!r} has an empty or inverted box '
                f'(xmin, ymin, xmax, ymax = {[v + 1 for v in box]} as whole '
                f'pixels); xmax must exceed xmin and ymax ymin. Fix or '
                f'remove the object.')
        # mmdet keeps the box; the pipeline clips it to the image: nothing
        if size and (min(x2, size[1]) <= max(x1, 0)
                     or min(y2, size[0]) <= max(y1, 0)):
            raise DatasetError(
                f'{xml}: object {name!r} has its box (xmin, ymin, xmax, '
                f'ymax = {[v + 1 for v in box]}) outside its {size[1]}x'
                f'{size[0]} (WxH) image; mmdet would clip it to an empty '
                f'box and train on that. Fix or remove the object.')
        if difficult:
            found['difficult'] += 1
        elif bbox_min_size is not None and min(x2 - x1,
                                               y2 - y1) < bbox_min_size:
            found[f'box under filter_cfg.bbox_min_size={bbox_min_size}'] += 1
        else:
            found['kept'] += 1
    return found


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
    filter_cfg = _filter_cfg(ds)
    tally = _Tally('objects')
    tally.listed = len(ids)
    for i in ids:
        xml = osp.join(ann_dir, i + '.xml')
        try:
            tree = _parse_xml(xml)
        except (ET.ParseError, expat.ExpatError, LookupError,
                ValueError) as err:  # LookupError: an unknown encoding
            raise DatasetError(
                f'{xml}: invalid XML ({err}); the file is damaged. Restore '
                f'it or remove id {i!r} from {ann_file}.') from None
        size = _voc_size(xml, tree, osp.join(img_dir, i + '.jpg'))
        found = _voc_objects(xml, tree, size, classes, subset,
                             filter_cfg.get('bbox_min_size'), tally)
        # mmdet's XMLDataset.filter_data
        if filter_cfg.get('filter_empty_gt') and not found:
            continue
        if size and min(size) < filter_cfg.get('min_size', 0):
            tally.dropped['its image is under filter_cfg.min_size'] += sum(
                found.values())
            continue
        tally.images += 1
        tally.kept += found.pop('kept', 0)
        tally.ignored.update(found)
    tally.log(where, ann_file)
    tally.require_usable(where, ann_file, bool(ds.get('test_mode')))


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
            if is_subclass_named(cls, 'mmdet', 'CocoPanopticDataset'):
                continue  # segments_info, not instances: mmdet reads them
            if is_subclass_named(cls, 'mmdet', 'CocoDataset'):
                _check_coco(split, ds, dataset_classes(ds, scope), scope)
            elif is_subclass_named(cls, 'mmdet', 'XMLDataset'):
                _check_xml(split, ds, cls, dataset_classes(ds, scope))
            elif 'seg_map_path' in prefix and prefix['seg_map_path']:
                _check_seg_files(split, ds, cls)
