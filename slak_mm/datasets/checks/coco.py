"""COCO instances JSON, checked as pycocotools and mmdet read it.

The file parses (a parse error names the file); its sections, ids, names
and numbers have the types pycocotools and mmdet use (ids are integers or
strings, numbers finite); every annotation refers to an image of
``images`` and a category of ``categories``; every listed image file
exists; every RLE mask has its image's size and counts that add up to it
(read as numbers, never decoded); every polygon is numbers within an image
size of its image; with a pipeline that loads masks, every annotation has
a ``segmentation``. What mmdet keeps, ignores and drops is counted
(:class:`~.summary.Tally`).
"""
import json
import math
import os.path as osp
from collections import Counter
from typing import Any, Optional

from slak_mm.registry import is_subclass_named, registered_class
from .configs import join_root, pipeline_transforms
from .errors import DatasetError, examples
from .rle import rle_problem
from .summary import Tally, filter_cfg

__all__ = ['check_coco']


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
            f'{examples(no_image)}); '
            f'fix the ids or restore the images list.')
    if no_category:
        raise DatasetError(
            f'{path}: {sum(no_category.values())} annotations have a '
            f'category_id that is not in "categories" '
            f'(ids {examples(sorted(no_category, key=str))}); fix the ids or '
            f'add the categories.')
    if malformed:
        raise DatasetError(
            f'{path}: {len(malformed)} annotations lack an integer id, '
            f'image_id or category_id, a bbox of 4 numbers or a numeric '
            f'area: {examples(malformed)}.')
    twice = [i for i, n in ann_ids.items() if n > 1]
    if twice:
        raise DatasetError(
            f'{path}: annotation ids must be unique; {len(twice)} are used '
            f'more than once: {examples(twice)}.')


def _coco_drop_reason(ann: dict, img: dict, category: str,
                      classes: Optional[tuple]) -> Optional[str]:
    """Why mmdet's ``CocoDataset.parse_data_info`` leaves an annotation out
    (None: it keeps it). Its rule, written again because it returns the
    kept instances without saying which annotation it left out or why
    (tests/datasets/test_checks.py holds the two to the same counts)."""
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


#: Annotations handed to ``_process_masks`` at once (its polygon arrays
#: of a whole COCO split would take hundreds of MB).
_MASK_CHUNK = 1024


def _count_masks(path: str, loader: Any, anns: list, images: dict,
                 tally: Tally) -> None:
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
            f'{examples(missing, quote=False)}; add their polygons, remove '
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
            f'"segmentation": {examples(damaged, quote=False)}. An RLE\'s '
            f'"size" is its image\'s [height, width] and its "counts" add up '
            f'to height x width; restore them or remove the annotations.')


def _coco_tally(path: str, ds: dict, images: dict, categories: dict,
                anns: list, classes: Optional[tuple],
                scope: Optional[str]) -> Tally:
    """Count what mmdet's ``CocoDataset`` and the pipeline's
    ``LoadAnnotations`` make of the (checked) annotations."""
    tally = Tally('annotations')
    tally.listed, tally.total = len(images), len(anns)
    # mmdet's CocoDataset.filter_data: an image is kept with an annotation
    # (any, also one parse_data_info leaves out) of the classes' categories
    filters = filter_cfg(ds)
    wanted = {
        i
        for i, name in categories.items() if classes is None or name in classes
    }
    with_ann = {a['image_id'] for a in anns if a['category_id'] in wanted}
    kept_images = {
        i
        for i, img in images.items()
        if (not filters.get('filter_empty_gt') or i in with_ann)
        and min(img['width'], img['height']) >= filters.get('min_size', 0)
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


def check_coco(split: str, ds: dict, classes: Optional[tuple],
               scope: Optional[str]) -> None:
    """Check a COCO instances file (see the module doc) and log what mmdet
    makes of it.

    Args:
        split (str): ``train``, ``val`` or ``test`` (for the message).
        ds (dict): A leaf ``CocoDataset`` config.
        classes (tuple, optional): The dataset's classes (None: all).
        scope (str, optional): The registry scope (the pipeline's
            ``LoadAnnotations``).

    Raises:
        DatasetError: One line naming the file, the problem and the fix.
    """
    where = f'{split} dataset ({ds.get("type")})'
    root = ds.get('data_root') or ''
    path = join_root(root, ds.get('ann_file'))
    if not path or not osp.isfile(path):
        return  # check_datasets names a missing ann_file
    data = _load_json(path)
    images = _coco_images(path, data)
    categories = _coco_categories(path, data)
    anns = data.get('annotations') or []
    _coco_annotations(path, anns, images, categories)
    _check_segmentations(path, anns, images)
    img_dir = join_root(root, (ds.get('data_prefix') or {}).get('img') or '')
    if osp.isdir(img_dir):
        missing = [
            img['file_name'] for img in images.values()
            if not osp.isfile(osp.join(img_dir, img['file_name']))
        ]
        if missing:
            raise DatasetError(
                f'{path}: {len(missing)} of its {len(images)} images are not '
                f'in {img_dir!r}: {examples(missing)}; restore them or '
                f'remove them from the JSON.')
    tally = _coco_tally(path, ds, images, categories, anns, classes, scope)
    tally.log(where, path)
    tally.require_usable(where, path, bool(ds.get('test_mode')))
