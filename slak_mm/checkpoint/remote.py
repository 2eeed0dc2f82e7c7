"""Checkpoints named by a URL: downloaded into torch's hub cache, then read
by the safe loader.

mmengine's ``http://`` / ``https://`` scheme, and the named schemes that
resolve to a URL (``torchvision://``, ``modelzoo://``, ``open-mmlab://``,
``openmmlab://``, ``mmcls://``), read through ``load_url``, which is
``torch.hub.load_state_dict_from_url``: it unpickles with
``weights_only=False``, also a file it only takes from its cache (offline
too). :func:`load_url` keeps what users rely on (the same cache folder and
file name, the download to a temporary name that is moved into place,
the optional hash check of the file name) and reads the file with
:func:`~slak_mm.checkpoint.load_checkpoint_safely`, naming the URL and the
cached file in every message.
"""
import os
import os.path as osp
import urllib.error
from typing import Any, Optional
from urllib.parse import urlparse

import torch.hub

from .reading import (CheckpointError, DamagedCheckpointError,
                      load_checkpoint_safely)

__all__ = [
    'CheckpointDownloadError', 'cached_checkpoint_path', 'is_remote',
    'load_url', 'require_checkpoint'
]


class CheckpointDownloadError(CheckpointError):
    """A checkpoint URL that could not be downloaded (offline, refused,
    not found, a failed hash check, a full disk)."""


def is_remote(source: str) -> bool:
    """Whether a checkpoint is named by a URL or a storage scheme
    (``https://``, ``torchvision://``, ``s3://``, ...) rather than a
    local path.

    Args:
        source (str): What the user gave (``load_from``, a tool argument).

    Returns:
        bool: ``'://'`` is in it (how mmengine's schemes are spelled).
    """
    return '://' in source


def require_checkpoint(source: str) -> None:
    """Stop early, naming a local checkpoint that is not a file; a remote
    source is read (and checked) when it is loaded.

    Args:
        source (str): A local path or a URL / scheme.

    Raises:
        FileNotFoundError: ``source`` is local and not a file.
    """
    if not is_remote(source) and not osp.isfile(source):
        raise FileNotFoundError(f'Checkpoint not found: {source!r}')


def cached_checkpoint_path(url: str,
                           model_dir: Optional[str] = None,
                           file_name: Optional[str] = None) -> str:
    """Where torch's hub cache keeps the file of ``url``.

    Args:
        url (str): The checkpoint's URL.
        model_dir (str, optional): The cache folder. Default:
            ``<torch.hub.get_dir()>/checkpoints`` (``$TORCH_HOME/hub/...``).
        file_name (str, optional): The cached file's name. Default: the
            last part of the URL's path.

    Returns:
        str: The cached file's path (which may not exist yet).
    """
    if model_dir is None:
        model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    return osp.join(model_dir, file_name or osp.basename(urlparse(url).path))


def _download_failure(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f'HTTP {err.code} {err.reason}'
    if isinstance(err, urllib.error.URLError):
        return f'{err.reason}'
    return ' '.join(str(err).split())[:300] or type(err).__name__


def load_url(url: str,
             model_dir: Optional[str] = None,
             map_location: Any = None,
             progress: bool = True,
             check_hash: bool = False,
             file_name: Optional[str] = None) -> Any:
    """``torch.hub.load_state_dict_from_url`` that reads the file safely.

    Takes the arguments of mmengine's ``load_url`` (the same as torch's,
    without ``weights_only``).

    Args:
        url (str): The checkpoint's URL.
        model_dir (str, optional): The cache folder
            (:func:`cached_checkpoint_path`).
        map_location: Passed to ``torch.load``.
        progress (bool): Show a progress bar while downloading.
        check_hash (bool): The file name holds the start of the file's
            SHA256 (``name-<sha256>.ext``), checked after a download.
        file_name (str, optional): The cached file's name.

    Returns:
        The checkpoint.

    Raises:
        CheckpointDownloadError: Not cached and the download failed (the
            message names the URL, the reason and where to put the file).
        CheckpointError: The file is refused or damaged (the message names
            the URL and the cached file).
    """
    cached = cached_checkpoint_path(url, model_dir, file_name)
    if not osp.exists(cached):
        hash_prefix = None
        if check_hash:
            match = torch.hub.HASH_REGEX.search(osp.basename(cached))
            hash_prefix = match.group(1) if match else None
        try:
            os.makedirs(osp.dirname(cached), exist_ok=True)
            # a temporary file beside `cached`, moved into place when done
            torch.hub.download_url_to_file(
                url, cached, hash_prefix, progress=progress)
        except (OSError, RuntimeError, ValueError) as err:  # URLError: OSError
            raise CheckpointDownloadError(
                f'Cannot download checkpoint {url} to {cached}: '
                f'{_download_failure(err)}. Without network access, fetch '
                f'the file elsewhere and put it at {cached}, or give its '
                f'local path instead of the URL.') from None
    try:
        return load_checkpoint_safely(
            cached, map_location=map_location, origin=url)
    except DamagedCheckpointError as err:
        raise DamagedCheckpointError(
            f'{err} Delete {cached} to download it again.') from None
