"""What slak_mm knows about image files, read from their bytes.

Torch-free and decoder-free (Pillow only where noted), so the dataset
checks, the loaders and the command lines share one table:

* :data:`IMG_EXTENSIONS`: the file endings read as images;
* :data:`PNG_MAGIC`, :data:`JPEG_MAGIC`, :data:`IMAGE_MAGIC`: the first
  bytes of the formats mm's decoders read (:func:`looks_like_image`);
* :func:`image_header`: size and EXIF orientation from a PNG / JPEG header
  (:data:`EXIF_TURNS` names the orientations), :func:`png_colour_type`;
* :func:`png_damage`: a PNG's chunks checked as libpng checks them (CRCs,
  ``IHDR``, critical chunks, the inflated size of the image data), which
  Pillow does not;
* :func:`jpeg_cut_short`: a JPEG that ends before its end marker.
"""
import io
import os
import struct
import zlib
from typing import BinaryIO, Optional, Tuple, Union

__all__ = [
    'EXIF_ORIENTATION', 'EXIF_TURNS', 'IMAGE_MAGIC', 'IMG_EXTENSIONS',
    'JPEG_MAGIC', 'ONE_CHANNEL_PNG', 'PNG_MAGIC', 'image_header',
    'image_size_from_header', 'jpeg_cut_short', 'looks_like_image',
    'png_colour_type', 'png_damage'
]

#: File endings read as images (from an input folder, or when a dataset
#: folder is scanned before training).
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')

#: First bytes of every PNG file.
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
#: First bytes of every JPEG file.
JPEG_MAGIC = b'\xff\xd8\xff'
#: First bytes of the image formats mm's decoders read.
IMAGE_MAGIC = (JPEG_MAGIC, PNG_MAGIC, b'BM', b'II*\x00', b'MM\x00*', b'RIFF',
               b'GIF8')


def looks_like_image(head: bytes) -> bool:
    """Whether a file's first bytes are those of an image format mm's
    decoders read (a fast scan; nothing is decoded).

    Args:
        head (bytes): The file's first bytes (8 are enough).

    Returns:
        bool: They start like one of :data:`IMAGE_MAGIC`.
    """
    return head.startswith(IMAGE_MAGIC)


# ----------------------------------------------------------------------------
# headers: size and EXIF orientation
# ----------------------------------------------------------------------------
# JPEG start-of-frame markers (C4 DHT, C8 JPG and CC DAC are not frames)
_JPEG_SOF = {
    0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
    0xCF
}

#: The EXIF ``Orientation`` tag (1: as stored; 2-8: mirrored / rotated).
EXIF_ORIENTATION = 0x0112
#: How each EXIF orientation turns the stored pixels (values 2-8).
EXIF_TURNS = {
    2: 'mirrored',
    3: 'rotated 180 degrees',
    4: 'flipped',
    5: 'transposed',
    6: 'rotated 90 degrees',
    7: 'transverse',
    8: 'rotated 270 degrees'
}


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


#: PNG colour types of one channel: grey and palette (a label map).
ONE_CHANNEL_PNG = (0, 3)


def png_colour_type(head: bytes) -> Optional[int]:
    """The colour type a PNG's ``IHDR`` declares.

    Args:
        head (bytes): The file's first 26 bytes (or more).

    Returns:
        int | None: 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA; None
        for no PNG or fewer bytes.
    """
    if not head.startswith(PNG_MAGIC) or len(head) < 26:
        return None
    return head[25]


# ----------------------------------------------------------------------------
# damage: PNG chunks, JPEG cut short
# ----------------------------------------------------------------------------
#: The PNG chunks a decoder must know (an upper-case first letter makes a
#: chunk critical).
_PNG_CRITICAL = (b'IHDR', b'PLTE', b'IDAT', b'IEND')
#: PNG colour types and the bit depths each allows.
_PNG_DEPTHS = {
    0: (1, 2, 4, 8, 16),
    2: (8, 16),
    3: (1, 2, 4, 8),
    4: (8, 16),
    6: (8, 16)
}
#: Samples per pixel of each PNG colour type.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: The passes of Adam7 interlacing: first column and row, their steps.
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
          (1, 0, 2, 2), (0, 1, 1, 2))


def _ihdr_problem(body: bytes) -> Optional[str]:
    if len(body) != 13:
        return f'its IHDR chunk holds {len(body)} bytes, not 13'
    width, height, depth, colour, compression, filtering, interlace = \
        struct.unpack('>IIBBBBB', body)
    if not 0 < max(width, height) < 2**31 or not min(width, height) or \
            depth not in _PNG_DEPTHS.get(colour, ()) or compression or \
            filtering or interlace > 1:
        return (f'its IHDR chunk is invalid ({width}x{height}, bit depth '
                f'{depth}, colour type {colour}, compression {compression}, '
                f'filter {filtering}, interlace {interlace})')
    return None


def _png_raw_size(ihdr: bytes) -> int:
    """Bytes of the image data inflated: each row of each (Adam7) pass is
    a filter byte and its packed samples."""
    width, height, depth, colour, _, _, interlace = struct.unpack(
        '>IIBBBBB', ihdr)
    bits = _PNG_CHANNELS[colour] * depth
    size = 0
    for x0, y0, dx, dy in _ADAM7 if interlace else ((0, 0, 1, 1), ):
        columns, rows = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if columns > 0 and rows > 0:
            size += rows * (1 + (columns * bits + 7) // 8)
    return size


def _image_data_problem(ihdr: bytes, parts: list) -> Optional[str]:
    """Whether the ``IDAT`` chunks inflate (in 1 MiB steps, nothing kept)
    to a complete zlib stream of exactly the rows the header declares:
    Pillow decoded a stream that ends rows early to a map with rows of
    zeros (found by tests/test_fuzz.py)."""
    expected, total = _png_raw_size(ihdr), 0
    inflater = zlib.decompressobj()
    try:
        for part in parts:
            while part and total <= expected:
                total += len(inflater.decompress(part, 1 << 20))
                part = inflater.unconsumed_tail
    except zlib.error as err:
        return f'its image data is damaged (zlib: {err})'
    if total != expected or not inflater.eof:
        return (
            f'its image data inflates to {"more than " * (total > expected)}'
            f'{total} bytes{"" if inflater.eof else " (cut short)"}, not '
            f'the {expected} its header declares')
    return None


def _critical_chunk_problem(kind: bytes, seen: list,
                            colour: int) -> Optional[str]:
    """A critical chunk after the first one that the PNG specification
    does not allow there (``seen``: the kinds before it)."""
    if kind not in _PNG_CRITICAL:
        return f'an unknown critical PNG chunk {kind!r}'
    if kind == b'IHDR' or kind == b'PLTE' and (
            b'PLTE' in seen or b'IDAT' in seen) or kind == b'IDAT' and (
                b'IDAT' in seen and seen[-1] != b'IDAT'):
        return f'a PNG chunk {kind!r} out of place'
    if kind == b'IDAT' and colour == 3 and b'PLTE' not in seen:
        return 'a palette PNG without its PLTE chunk'
    return None


def png_damage(data: bytes) -> Optional[str]:
    """What is wrong with a PNG's chunks up to ``IEND``, or None.

    A CRC that does not match, a length past the end of the file, an
    invalid ``IHDR``, an unknown or misplaced critical chunk, a palette
    image without ``PLTE``, image data that does not inflate to the rows
    the header declares. Pillow checks none of these and decoded such
    files to other labels without an error (found by tests/test_fuzz.py);
    libpng refuses them, as the PNG specification asks. A file that ends
    before ``IEND`` is truncated, also where its image data happens to be
    complete.

    Args:
        data (bytes): The whole file (it starts with :data:`PNG_MAGIC`).

    Returns:
        str | None: The problem, with the byte offset where it is.
    """
    at, seen, ihdr, parts = len(PNG_MAGIC), [], b'', []
    while at + 12 <= len(data):
        length, kind = struct.unpack_from('>I4s', data, at)
        end = at + 12 + length
        if end > len(data):
            return (f'truncated: its PNG chunk {kind!r} at byte {at} runs '
                    f'{end - len(data)} bytes past the end of the file')
        body = memoryview(data)[at + 8:end - 4]
        stored, = struct.unpack_from('>I', data, end - 4)
        if zlib.crc32(body, zlib.crc32(kind)) != stored:
            return f'its PNG chunk {kind!r} at byte {at} fails its CRC check'
        if not seen:
            ihdr = bytes(body)
            problem = _ihdr_problem(ihdr) if kind == b'IHDR' else \
                f'its first PNG chunk is {kind!r}, not IHDR'
        elif kind[:1].isupper():
            problem = _critical_chunk_problem(kind, seen, ihdr[9])
        else:
            problem = None
        if problem:
            return f'{problem} (byte {at})'
        if kind == b'IEND':
            return _image_data_problem(ihdr, parts)
        if kind == b'IDAT':
            parts.append(body)
        seen.append(kind)
        at = end
    return 'truncated: the file ends before its IEND chunk'


def jpeg_cut_short(data: bytes) -> bool:
    """Whether a JPEG ends before its end marker (False for other data).

    The end marker is searched from the back (no decoding); only a file
    that lacks it after its last scan is decoded by Pillow to tell
    trailing junk from a cut. Pillow set to load truncated images
    (``ImageFile.LOAD_TRUNCATED_IMAGES``) accepts them.

    Args:
        data (bytes): The whole file.

    Returns:
        bool: It is a JPEG cut short.
    """
    if not data.startswith(b'\xff\xd8'):
        return False
    # entropy-coded data cannot hold FF D9 / FF DA (byte stuffing)
    end = data.rfind(b'\xff\xd9')
    if end >= 0 and end > data.rfind(b'\xff\xda'):
        return False
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except Exception:  # noqa: BLE001 - any failure means: cut short
        return True
    return False
