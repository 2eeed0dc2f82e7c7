"""Segmentation datasets (mmseg's ``img_path`` / ``seg_map_path``): every
image has its label map, a non-empty one-channel PNG (or another lossless
format: JPEG data is refused) whose header size is its image's; a JPEG with
an EXIF orientation that the image loader would apply (and the label map's
would not) is refused. Headers only: nothing is decoded."""
import os
import os.path as osp
from typing import List, Optional, Tuple

from slak_mm.registry import init_default, type_name
from slak_mm.utils.image_formats import (EXIF_TURNS, JPEG_MAGIC,
                                         ONE_CHANNEL_PNG, image_header,
                                         looks_like_image, png_colour_type)
from .configs import join_root, pipeline_transforms
from .errors import DatasetError, examples

__all__ = ['check_seg_files', 'lossy_label_map_error']


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


def _seg_pairs(ds: dict, cls: Optional[type]) -> Tuple[str, Optional[list]]:
    """(image, annotation) paths as mmseg's ``BaseSegDataset`` pairs them,
    and where it takes the list from (for a message); None for a missing
    folder (check_datasets names it)."""
    root = ds.get('data_root') or ''
    prefix = ds.get('data_prefix') or {}
    img_dir = join_root(root, prefix.get('img_path') or '')
    ann_dir = join_root(root, prefix.get('seg_map_path') or '')
    img_suffix = ds.get('img_suffix', init_default(cls, 'img_suffix', '.jpg'))
    seg_suffix = ds.get('seg_map_suffix',
                        init_default(cls, 'seg_map_suffix', '.png'))
    ann_file = join_root(root, ds.get('ann_file') or '')
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
        if (type_name(node) or '').endswith('LoadImageFromFile'):
            return node.get('color_type',
                            'color') in ('color', 'grayscale') and node.get(
                                'imdecode_backend', 'cv2') in ('cv2', 'pillow')
    return True


def check_seg_files(split: str, ds: dict, cls: Optional[type]) -> None:
    """Every image of an mmseg dataset has a readable one-channel label map
    of its size, and no EXIF turn that its label map would not get.

    Args:
        split (str): ``train``, ``val`` or ``test`` (for the message).
        ds (dict): A leaf dataset config with ``data_prefix.seg_map_path``.
        cls (type, optional): Its class (the defaults of its suffixes).

    Raises:
        DatasetError: One line naming the file, the problem and the fix.
    """
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
            f'missing: {examples(missing)}. Each image needs its label map '
            f'(same name, seg_map_suffix); add them or remove those images.')
    exif = _loader_applies_exif(ds)
    for img, ann in pairs:
        try:
            _check_seg_pair(where, img, ann, exif)
        except OSError as err:  # unreadable: permissions, I/O error
            raise DatasetError(f'{where}: cannot read {err.filename!r} '
                               f'({err.strerror or err}).') from None


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


def _check_seg_pair(where: str, img: str, ann: str, exif: bool) -> None:
    with open(ann, 'rb') as f:
        head = f.read(26)
    if not head:
        raise DatasetError(
            f'{where}: annotation {ann!r} is empty (0 bytes); replace it '
            f'with the label map of {img!r} or remove both files.')
    if not looks_like_image(head):
        raise DatasetError(
            f'{where}: annotation {ann!r} is not an image (first bytes '
            f'{head[:8]!r}); a label map is a single-channel PNG of '
            f'class indices. Replace it or remove it and {img!r}.')
    if head.startswith(JPEG_MAGIC):
        raise DatasetError(f'{where}: {lossy_label_map_error(ann)}')
    colour = png_colour_type(head)
    if colour is not None and colour not in ONE_CHANNEL_PNG:
        raise DatasetError(
            f'{where}: annotation {ann!r} is a colour PNG (colour type '
            f'{colour}); a label map is one channel of class indices (a '
            f'grayscale or palette PNG). Convert or replace it.')
    if not osp.isfile(img):  # listed in ann_file without an image
        raise DatasetError(
            f'{where}: image {img!r} (listed in ann_file) is missing.')
    img_size, orientation = image_header(img)
    # the image loader applies EXIF, the label map's loader does not: which
    # of the two orientations the map was drawn in only its maker knows
    if exif and orientation in EXIF_TURNS:
        raise DatasetError(
            f'{where}: image {img!r} has EXIF Orientation={orientation} '
            f'({EXIF_TURNS[orientation]}): the image loader turns it, but '
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
