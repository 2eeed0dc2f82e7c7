"""PASCAL VOC XML, checked as mmdet's ``XMLDataset`` reads it.

Every listed id has its XML and image file; each XML parses, without a
DOCTYPE (no entity expansion); each object has a known class name and a
box, as mmdet reads it, with ``xmax > xmin``, ``ymax > ymin`` and some part
inside the image. What mmdet keeps, ignores and drops is counted
(:class:`~.summary.Tally`).
"""
import os.path as osp
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any, List, Optional, Tuple
from xml.parsers import expat

from slak_mm.registry import init_default
from slak_mm.utils.image_formats import image_header
from .configs import join_root
from .errors import DatasetError, examples
from .summary import Tally, filter_cfg

__all__ = ['check_xml']


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
                 tally: Tally) -> Counter:
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


def check_xml(split: str, ds: dict, cls: Optional[type],
              classes: Optional[tuple]) -> None:
    """Check a PASCAL VOC split (see the module doc) and log what mmdet
    makes of it.

    Args:
        split (str): ``train``, ``val`` or ``test`` (for the message).
        ds (dict): A leaf ``XMLDataset`` config.
        cls (type, optional): Its class (the defaults of its subfolders).
        classes (tuple, optional): The dataset's classes (None: all).

    Raises:
        DatasetError: One line naming the file, the problem and the fix.
    """
    where = f'{split} dataset ({ds.get("type")})'
    root = ds.get('data_root') or ''
    ann_file = join_root(root, ds.get('ann_file'))
    if not ann_file or not osp.isfile(ann_file):
        return
    sub_root = join_root(root, (ds.get('data_prefix')
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
            f'{examples(missing)}; restore them or remove their ids from '
            f'the list.')
    filters = filter_cfg(ds)
    tally = Tally('objects')
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
                             filters.get('bbox_min_size'), tally)
        # mmdet's XMLDataset.filter_data
        if filters.get('filter_empty_gt') and not found:
            continue
        if size and min(size) < filters.get('min_size', 0):
            tally.dropped['its image is under filter_cfg.min_size'] += sum(
                found.values())
            continue
        tally.images += 1
        tally.kept += found.pop('kept', 0)
        tally.ignored.update(found)
    tally.log(where, ann_file)
    tally.require_usable(where, ann_file, bool(ds.get('test_mode')))
