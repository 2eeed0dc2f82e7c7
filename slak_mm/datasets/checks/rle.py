"""COCO run-length encoded (RLE) masks, checked without decoding them.

pycocotools decodes an RLE into a ``size[0] x size[1]`` array it allocates
from the RLE's own ``size`` (a crowd RLE with size 100000 x 100000 costs
10 GB), leaves the pixels after the last count uninitialised when the counts
sum to less than ``h * w``, and stops with a bare ``ValueError`` when they sum
to more. :func:`rle_problem` reads the counts as numbers instead, so a
damaged RLE is refused before anything decodes it.
"""
from typing import Any, List, Optional

__all__ = ['rle_counts', 'rle_problem']

#: A count of a compressed RLE is at most 7 characters of 5 bits (it is an
#: unsigned 32-bit number in pycocotools).
_MAX_CHARS_PER_COUNT = 7


def rle_counts(counts: str) -> List[int]:
    """The run lengths of a compressed RLE string, as pycocotools'
    ``rleFrString`` reads them.

    Written here because pycocotools has no function that returns them
    without decoding the mask. Each count is 5-bit groups (characters from
    ``'0'``, bit 0x20: more groups follow, bit 0x10 of the last group: the
    sign); from the third count on each is stored as the difference to the
    count two places before it.

    Args:
        counts (str): The ``counts`` string of a compressed RLE.

    Returns:
        list[int]: The run lengths.

    Raises:
        ValueError: A character outside the code, a count cut short or one
            longer than 32 bits.
    """
    values: List[int] = []
    pos, end = 0, len(counts)
    while pos < end:
        value = shift = 0
        more = True
        while more:
            if pos == end:
                raise ValueError('the string ends inside a count')
            code = ord(counts[pos]) - 48
            if not 0 <= code < 64:
                raise ValueError(f'character {counts[pos]!r} at {pos} is '
                                 f'not part of the code')
            value |= (code & 0x1f) << (5 * shift)
            more = bool(code & 0x20)
            pos += 1
            shift += 1
            if shift > _MAX_CHARS_PER_COUNT:
                raise ValueError(f'a count longer than 32 bits ends at {pos}')
            if not more and code & 0x10:
                value |= -1 << (5 * shift)
        if len(values) > 2:
            value += values[-2]
        values.append(value)
    return values


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def rle_problem(segmentation: dict, height: int, width: int) -> Optional[str]:
    """What is wrong with an RLE mask of an image of ``height x width``.

    Nothing is decoded or allocated: the counts are read as numbers.

    Args:
        segmentation (dict): The annotation's ``segmentation`` (``counts``:
            a list of run lengths or a compressed string; ``size``:
            ``[height, width]``).
        height (int): The image's height (``images[].height``).
        width (int): The image's width.

    Returns:
        str | None: The problem, None for a valid RLE.
    """
    size, counts = segmentation.get('size'), segmentation.get('counts')
    if not (isinstance(size, (list, tuple)) and len(size) == 2
            and all(_is_int(v) for v in size)):
        return f'RLE "size" {str(size)[:40]} is not [height, width]'
    if list(size) != [height, width]:
        return (f'RLE "size" {list(size)} is not its image\'s [height, '
                f'width] [{height}, {width}]')
    if isinstance(counts, str):
        try:
            counts = rle_counts(counts)
        except ValueError as err:
            return f'compressed RLE "counts" cannot be read ({err})'
    elif not (isinstance(counts, list) and all(_is_int(v) for v in counts)):
        return ('RLE "counts" is neither a compressed string nor a list of '
                'integers')
    if any(v < 0 for v in counts):
        return 'RLE "counts" holds a negative run length'
    total = sum(counts)
    if total != height * width:
        return (f'RLE "counts" add up to {total} pixels, not {height} x '
                f'{width} = {height * width}')
    return None
