"""Loading transforms that check what they decode, naming the file.

The checks that need the pixels run where the pipeline decodes anyway, so a
dataset is never decoded twice:

* :class:`CheckedLoadImageFromFile` (mmseg and mmdet): mmcv's
  ``LoadImageFromFile`` that stops with one line naming the file when it is
  missing, empty (0 bytes), not an image, a JPEG / PNG cut short (mmcv
  raises a bare ``AssertionError`` or a decoder error for these, and some
  decoders return a cut JPEG as an image with a grey lower part), or a PNG
  whose chunks fail their CRC or the PNG specification (Pillow decodes
  some of those to other pixels without an error);
* :class:`CheckedLoadAnnotations` (mmseg): mmseg's ``LoadAnnotations`` with
  the same decoding checks for the label map, plus: the size its header
  declares, before decoding (a decompression bomb inflates nothing), one
  channel, the size of its decoded image, and every label value (after
  ``reduce_zero_label``
  and the dataset's ``label_map``) in ``0..num_classes-1`` or the ignore
  index. Out-of-range values are an error naming the file, the values found
  and the allowed range; ``out_of_range='ignore'`` maps them to the ignore
  index instead, with a warning that counts them.

:func:`install_data_checks` puts them into a config's pipelines (the tools
call it); ``data_checks=dict(out_of_range='ignore')`` in the config, or
``--cfg-options data_checks.out_of_range=ignore``, is the switch.
"""
import io
from typing import Any, Callable, Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log

from slak_mm.registry import FRAMEWORKS
from slak_mm.utils.image_formats import (JPEG_MAGIC, PNG_MAGIC, image_header,
                                         jpeg_cut_short, png_damage)
from .checks import (DatasetError, dataset_classes, leaf_dataset_cfgs,
                     lossy_label_map_error, pipeline_transforms)

__all__ = [
    'CheckedLoadImageFromFile', 'OUT_OF_RANGE_MODES', 'install_data_checks',
    'read_and_decode'
] + (['CheckedLoadAnnotations'] if 'mmseg' in FRAMEWORKS else [])

#: Values of ``out_of_range`` (``data_checks.out_of_range``).
OUT_OF_RANGE_MODES = ('error', 'ignore')


def read_and_decode(
        path: str,
        what: str,
        get: Callable[[str], bytes],
        flag: str = 'color',
        backend: Optional[str] = None,
        lossless: bool = False,
        check_header: Optional[Callable[[bytes], None]] = None) -> np.ndarray:
    """Read and decode an image file; every failure names the file.

    Args:
        path (str): The file.
        what (str): ``'image'`` or ``'annotation'``, for the message.
        get (callable): Reads the file's bytes (a file backend's ``get``).
        flag (str): mmcv's ``imfrombytes`` flag.
        backend (str, optional): mmcv's decoding backend.
        lossless (bool): Refuse JPEG data (label maps). Defaults to False.
        check_header (callable, optional): Called with the file's bytes
            before they are decoded; raises to refuse them (e.g. a header
            declaring another size than expected: a decompression bomb is
            then refused before it inflates).

    Returns:
        np.ndarray: The decoded array.

    Raises:
        DatasetError: Missing, unreadable, empty, undecodable, damaged (a
            PNG chunk failing its CRC) or cut-short file; JPEG data where
            ``lossless``.
    """
    fix = ('replace it, or remove it from the dataset (with its '
           'annotation or image)')
    try:
        data = get(path)
    except FileNotFoundError:
        raise DatasetError(f'{what} {path!r} not found; {fix}.') from None
    except OSError as err:
        raise DatasetError(
            f'{what} {path!r} cannot be read ({err}); {fix}.') from None
    if not data:
        raise DatasetError(f'{what} {path!r} is empty (0 bytes); {fix}.')
    if lossless and data.startswith(JPEG_MAGIC):
        raise lossy_label_map_error(path)
    if check_header is not None:
        check_header(data)
    damage = png_damage(data) if data.startswith(PNG_MAGIC) else None
    if damage:
        raise DatasetError(f'{what} {path!r} is damaged ({damage}); {fix}.')
    try:
        array = mmcv.imfrombytes(data, flag=flag, backend=backend)
        reason = 'the decoder returned nothing'
    except Exception as err:  # noqa: BLE001 - every decoder's own errors
        array, reason = None, f'{type(err).__name__}: {err}'
    # also when decoding "worked": some decoders fill a cut image with grey
    if jpeg_cut_short(data):
        raise DatasetError(
            f'{what} {path!r} is truncated or damaged ({len(data)} bytes, '
            f'the image data ends before its end marker); {fix}.')
    if array is None:
        raise DatasetError(
            f'{what} {path!r} cannot be decoded ({reason}; first bytes '
            f'{bytes(data[:8])!r}): it is damaged or not an image; {fix}.')
    return array


def _getter(backend_args: Optional[dict],
            file_client_args: Optional[dict]) -> Callable[[str], bytes]:
    if file_client_args is not None:
        return lambda path: fileio.FileClient.infer_client(
            file_client_args, path).get(path)
    return lambda path: fileio.get(path, backend_args=backend_args)


class CheckedLoadImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` that names the file it cannot load.

    Same arguments and results. A missing, empty (0-byte), undecodable or
    truncated image raises :class:`DatasetError` naming the file (with
    ``ignore_empty=True`` the sample is skipped, as mmcv does).
    """

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']``.

        Args:
            results (dict): With ``img_path``.

        Returns:
            dict | None: With ``img``, ``img_shape`` and ``ori_shape``.
        """
        filename = results['img_path']
        try:
            img = read_and_decode(
                filename, 'image',
                _getter(self.backend_args, self.file_client_args),
                self.color_type, self.imdecode_backend)
        except DatasetError:
            if self.ignore_empty:
                return None
            raise
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results


def _register(cls: type, *packages: str) -> type:
    import importlib
    for package in packages:
        if package in FRAMEWORKS:
            registry = importlib.import_module(f'{package}.registry')
            registry.TRANSFORMS.register_module(module=cls)
    return cls


_register(CheckedLoadImageFromFile, 'mmseg', 'mmdet')

if 'mmseg' in FRAMEWORKS:
    from mmseg.datasets.transforms import LoadAnnotations as _SegLoad

    class CheckedLoadAnnotations(_SegLoad):
        """mmseg's ``LoadAnnotations`` that checks the label map it loads.

        Beyond the parent's decoding, stops with one line naming the file
        (:class:`DatasetError`) when the label map is missing, empty, not
        an image, truncated, JPEG (lossy) data, has more than one channel,
        or has another size
        than its image (``ori_shape`` of ``LoadImageFromFile``); and checks
        every label value after ``reduce_zero_label`` (ADE20K: raw 0 -> 255,
        raw v -> v - 1) and the dataset's ``label_map``: values outside
        ``0..num_classes-1`` that are not ``ignore_index`` are an error
        naming the file, the values found in it and the allowed range.

        Args:
            num_classes (int, optional): Classes of the dataset; None skips
                the value check (:func:`install_data_checks` sets it from
                the dataset's classes).
            ignore_index (int): The label that is ignored. Defaults to 255.
            out_of_range (str): ``'error'`` (default) or ``'ignore'``: map
                the out-of-range pixels to ``ignore_index`` and log a
                warning with their count and values.
            reduce_zero_label (bool, optional): As mmseg's.
            backend_args (dict, optional): As mmseg's.
            imdecode_backend (str): As mmseg's. Defaults to 'pillow'.
        """

        def __init__(self,
                     num_classes: Optional[int] = None,
                     ignore_index: int = 255,
                     out_of_range: str = 'error',
                     reduce_zero_label: Optional[bool] = None,
                     backend_args: Optional[dict] = None,
                     imdecode_backend: str = 'pillow') -> None:
            super().__init__(
                reduce_zero_label=reduce_zero_label,
                backend_args=backend_args,
                imdecode_backend=imdecode_backend)
            if out_of_range not in OUT_OF_RANGE_MODES:
                raise ValueError(
                    f'out_of_range={out_of_range!r}: expected one of '
                    f'{OUT_OF_RANGE_MODES}')
            self.num_classes = num_classes
            self.ignore_index = ignore_index
            self.out_of_range = out_of_range

        def _allowed(self, label_map: Optional[dict]) -> str:
            """The values a label map may hold, in the file's terms."""
            n, ignore = self.num_classes, self.ignore_index
            if self.num_classes is None:  # only the uint8 range is known
                return '0..255'
            if label_map:
                return (f'0..{n - 1} and {ignore} (ignore) after the '
                        f'dataset\'s label_map; {n} classes')
            if self.reduce_zero_label:
                return (f'0..{n} and 255 in the file (reduce_zero_label: '
                        f'value v is class v-1, 0 and 255 are ignored; '
                        f'{n} classes)')
            return f'0..{n - 1} and {ignore} (ignore); {n} classes'

        @staticmethod
        def _check_size(size: Optional[tuple], results: dict) -> None:
            """A label map of ``size`` (height, width; None: unknown) that
            is not its image's (``ori_shape``) is refused."""
            shape = results.get('ori_shape')
            if shape is not None and size is not None and \
                    tuple(size) != tuple(shape[:2]):
                raise DatasetError(
                    f'annotation {results["seg_map_path"]!r} is {size[1]}x'
                    f'{size[0]} (WxH) but its image '
                    f'{results.get("img_path")!r} is {shape[1]}x{shape[0]}; '
                    f'a label map must have its image\'s size. Fix or '
                    f'remove the pair.')

        def _load_seg_map(self, results: dict) -> None:
            path = results['seg_map_path']
            raw = read_and_decode(
                path,
                'annotation',
                _getter(self.backend_args, None),
                'unchanged',
                self.imdecode_backend,
                lossless=True,
                # the size its header declares, before anything inflates
                check_header=lambda data: self._check_size(
                    image_header(io.BytesIO(data))[0], results))
            if raw.ndim == 3 and raw.shape[2] == 1:
                raw = raw[..., 0]
            if raw.ndim != 2:
                raise DatasetError(
                    f'annotation {path!r} has {raw.shape[2]} channels; a '
                    f'label map is one channel of class indices (a '
                    f'grayscale or palette PNG). Convert or replace it.')
            self._check_size(raw.shape, results)
            # mmseg's reduce_zero_label rule and its consistency check
            if self.reduce_zero_label is None:
                self.reduce_zero_label = results['reduce_zero_label']
            if self.reduce_zero_label != results['reduce_zero_label']:
                raise ValueError(
                    f'LoadAnnotations(reduce_zero_label='
                    f'{self.reduce_zero_label}) but the dataset has '
                    f'reduce_zero_label={results["reduce_zero_label"]}; '
                    f'set the same value in both.')
            label = raw.astype(np.int32)
            if self.reduce_zero_label:  # raw 0 and 255 -> 255 as in mmseg
                label -= 1
                label[(raw == 0) | (raw == 255)] = 255
            label_map = results.get('label_map')
            if label_map:
                mapped = label.copy()
                for old_id, new_id in label_map.items():
                    mapped[label == old_id] = new_id
                label = mapped
            # values mmseg's uint8 cast would wrap (16-bit maps) are wrong
            bad = raw > 255 if raw.dtype != np.uint8 else None
            if self.num_classes is not None:
                out = ((label < 0) | (label >= self.num_classes)) & \
                    (label != self.ignore_index)
                bad = out if bad is None else bad | out
            if bad is not None and bad.any():
                self._out_of_range(path, raw, label, bad, label_map)
            results['gt_seg_map'] = label.astype(np.uint8)
            results['seg_fields'].append('gt_seg_map')

        def _out_of_range(self, path: str, raw: np.ndarray, label: np.ndarray,
                          bad: np.ndarray, label_map: Optional[dict]) -> None:
            count = int(bad.sum())
            found = np.unique(raw[bad]).tolist()
            shown = found[:10] + (['...'] if len(found) > 10 else [])
            values = ', '.join(str(v) for v in shown)
            allowed = self._allowed(label_map)
            if self.out_of_range == 'error':
                raise DatasetError(
                    f'annotation {path!r}: label values [{values}] in '
                    f'{count} pixels are outside the allowed range: '
                    f'{allowed}. Fix the file, check the dataset\'s classes '
                    f'and reduce_zero_label, or set data_checks=dict('
                    f'out_of_range=\'ignore\') to ignore those pixels.')
            label[bad] = self.ignore_index
            print_log(
                f'annotation {path!r}: {count} pixels with label values '
                f'[{values}] outside the allowed range ({allowed}) set to '
                f'{self.ignore_index} (ignored: data_checks.out_of_range='
                f'\'ignore\').',
                logger='current',
                level=30)  # WARNING

        def __repr__(self) -> str:
            return (f'{super().__repr__()[:-1]}, num_classes='
                    f'{self.num_classes}, ignore_index={self.ignore_index}, '
                    f"out_of_range='{self.out_of_range}')")

    _register(CheckedLoadAnnotations, 'mmseg')


def _seg_ignore_index(cfg: Any) -> int:
    heads = (cfg.get('model') or {}).get('decode_head') or {}
    for head in heads if isinstance(heads, (list, tuple)) else [heads]:
        if isinstance(head, dict) and 'ignore_index' in head:
            return head['ignore_index']
    return 255


def _install(pipeline: Any, scope: Optional[str], classes: Optional[tuple],
             options: dict) -> None:
    """Swap the loading transforms of one pipeline (in place)."""
    for node in pipeline_transforms(pipeline):
        kind = node.get('type')
        if not isinstance(kind, str):
            continue
        prefix, _, name = kind.rpartition('.')
        keep = f'{prefix}.' if prefix in ('mmseg', 'mmdet') else ''
        if name == 'LoadImageFromFile':
            node['type'] = f'{keep}CheckedLoadImageFromFile'
        elif name == 'LoadAnnotations' and (prefix or scope) == 'mmseg':
            node['type'] = f'{keep}CheckedLoadAnnotations'
        if node['type'].endswith('CheckedLoadAnnotations'):
            if classes is not None:
                node.setdefault('num_classes', len(classes))
            for key, value in options.items():
                node.setdefault(key, value)


def install_data_checks(cfg: Any) -> None:
    """Use the checked loading transforms in every pipeline of ``cfg``.

    ``LoadImageFromFile`` becomes :class:`CheckedLoadImageFromFile`; in
    mmseg configs ``LoadAnnotations`` becomes :class:`CheckedLoadAnnotations`
    with ``num_classes`` from its dataset's classes, ``ignore_index`` from
    ``model.decode_head`` (255 if unset) and ``out_of_range`` from
    ``cfg.data_checks`` (``'error'`` if unset). Covers the train, val and
    test dataloaders (inside dataset wrappers) and ``tta_pipeline``;
    idempotent; arguments set on a transform are kept.

    Args:
        cfg (Config): The config, edited in place.

    Raises:
        ValueError: ``data_checks`` holds an unknown key or value.
    """
    checks = dict(cfg.get('data_checks') or {})
    unknown = set(checks) - {'out_of_range'}
    mode = checks.get('out_of_range', 'error')
    if unknown or mode not in OUT_OF_RANGE_MODES:
        raise ValueError(
            f'data_checks={checks!r}: the one setting is out_of_range, one '
            f'of {OUT_OF_RANGE_MODES} (e.g. --cfg-options '
            f'data_checks.out_of_range=ignore).')
    scope = cfg.get('default_scope')
    options = dict(out_of_range=mode)
    if scope == 'mmseg':
        options['ignore_index'] = _seg_ignore_index(cfg)
    test_classes = None
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for ds in leaf_dataset_cfgs(loader.get('dataset')):
            classes = dataset_classes(ds, scope)
            _install(ds.get('pipeline'), scope, classes, options)
            if split == 'test':
                test_classes = classes
    if cfg.get('tta_pipeline'):
        _install(cfg.tta_pipeline, scope, test_classes, options)
