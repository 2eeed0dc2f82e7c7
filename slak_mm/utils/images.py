"""Image files given on a command line: a file, a folder or a list."""
import os
import os.path as osp
from typing import List, Sequence, Union

from .image_formats import IMG_EXTENSIONS

__all__ = ['list_images']


def list_images(inputs: Union[str, Sequence[str]]) -> List[str]:
    """The image files named by ``inputs``.

    Args:
        inputs (str | Sequence[str]): An image file, a folder (its image
            files, sorted, not recursive) or a list of image files.

    Returns:
        list[str]: Image paths.

    Raises:
        FileNotFoundError: A path does not exist, or a folder holds no
            image.
    """
    if isinstance(inputs, str):
        if osp.isdir(inputs):
            images = sorted(
                osp.join(inputs, name) for name in os.listdir(inputs)
                if name.lower().endswith(IMG_EXTENSIONS)
                and osp.isfile(osp.join(inputs, name)))
            if not images:
                raise FileNotFoundError(
                    f'No image ({", ".join(IMG_EXTENSIONS)}) in the folder '
                    f'{inputs!r}')
            return images
        inputs = [inputs]
    for path in inputs:
        if not osp.isfile(path):
            raise FileNotFoundError(f'Image not found: {path!r}')
    return list(inputs)
