"""What a detection dataset yields, counted by mmdet's rules
(``parse_data_info``, ``filter_data``, ``LoadAnnotations``): images
yielded, instances kept, ignored (crowd, difficult, masks without a polygon
of 3 points, ...) and dropped, per reason. Logged as one line at the start
of a run (a WARNING when anything is dropped); a split left without a
usable instance is an error."""
import logging
from collections import Counter

from mmengine.logging import print_log

from .errors import DatasetError

__all__ = ['Tally', 'filter_cfg']

#: Reasons to ignore an instance that are the dataset's conventions or the
#: config's choice (said in the summary, no WARNING), by their start.
_ROUTINE_IGNORED = ('crowd (iscrowd)', 'difficult',
                    'box under filter_cfg.bbox_min_size')


class Tally:
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


def filter_cfg(ds: dict) -> dict:
    """The ``filter_cfg`` mmdet's ``filter_data`` applies.

    Args:
        ds (dict): A leaf detection dataset config.

    Returns:
        dict: Its ``filter_cfg``; empty in test mode (none applies).
    """
    return {} if ds.get('test_mode') else dict(ds.get('filter_cfg') or {})
