"""Constants and small helpers shared by the tests (the fixtures built from
them are in conftest.py)."""
import contextlib
import errno
import fnmatch
import os
import os.path as osp
import signal
import socket
import stat

# rel_err(out, ref): max absolute difference over the reference's max
# magnitude, in float64 (the measure the conv implementations are held to)
from slak_mm.ops import relative_error as rel_err  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: The demo configs (UperNet on synthetic ADE20K, Faster R-CNN on synthetic
#: VOC, Cascade Mask R-CNN on synthetic COCO).
DEMO_CONFIG = osp.join(ROOT, 'configs', 'demo',
                       'upernet_slak_demo_synthetic_ade20k.py')
DEMO_VOC_CONFIG = osp.join(ROOT, 'configs', 'demo',
                           'faster_rcnn_slak_demo_synthetic_voc.py')
DEMO_COCO_CONFIG = osp.join(ROOT, 'configs', 'demo',
                            'cascade_mask_rcnn_slak_demo_synthetic_coco.py')

#: A tiny SLaK (four one-block stages, 9/7/7/5 kernels) that builds and
#: runs in milliseconds; tests spell out only what they change.
TINY_SLAK = dict(
    arch=dict(depths=[1, 1, 1, 1], dims=[8, 16, 24, 32]),
    kernel_size=(9, 7, 7, 5),
    small_kernel=3,
    width_factor=1.0)


def tiny_slak_args(depths=None, dims=None, **overrides):
    """``TINY_SLAK`` with other ``depths`` / ``dims`` or arguments.

    Args:
        depths (list[int], optional): Blocks per stage.
        dims (list[int], optional): Channels per stage.
        **overrides: Other SLaK arguments.

    Returns:
        dict: SLaK keyword arguments.
    """
    arch = dict(TINY_SLAK['arch'])
    if depths is not None:
        arch['depths'] = list(depths)
    if dims is not None:
        arch['dims'] = list(dims)
    return dict(TINY_SLAK, arch=arch, **overrides)


def tiny_slak(depths=None, dims=None, **overrides):
    """Build a tiny SLaK (see :func:`tiny_slak_args`).

    Returns:
        SLaK: The backbone, not initialised.
    """
    from slak_mm.models import SLaK
    return SLaK(**tiny_slak_args(depths, dims, **overrides))


#: OpenMMLab's packages: what a bare GPU box lacks.
OPENMMLAB = ('mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain')


def hide_modules(hidden=OPENMMLAB) -> str:
    """Code that, run first in an interpreter, makes ``hidden`` (top-level
    package names) unimportable there: a bare GPU box, or a subprocess that
    needs ``slak_mm.ops`` without the seconds OpenMMLab takes to import.

    Args:
        hidden (Sequence[str]): The packages. Default: :data:`OPENMMLAB`.

    Returns:
        str: Python source.
    """
    return f'''
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {tuple(hidden)!r}:
            raise ModuleNotFoundError(f'No module named {{name!r}}', name=name)
sys.meta_path.insert(0, Hide())
'''


def free_port() -> str:
    """A TCP port free on this machine now, for a distributed run's
    ``PORT`` (a fixed one collides with any other run on the machine).

    Returns:
        str: The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


class Payload:
    """Pickles as ``os.system('touch MARKER')``: a hostile checkpoint entry
    whose effect a test can look for (``MARKER`` must not exist after a
    refused load).

    Args:
        marker (str): The file the payload would create.
    """

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


@contextlib.contextmanager
def serve_folder(folder: str):
    """Serve ``folder`` over HTTP on a free loopback port for the block.

    Args:
        folder (str): What to serve.

    Yields:
        str: The base URL (``http://127.0.0.1:PORT``).
    """
    import functools
    import http.server
    import threading

    class QuietHandler(http.server.SimpleHTTPRequestHandler):

        def log_message(self, *args):  # no request lines on stderr
            pass

    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(QuietHandler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()


#: What :func:`special_file` makes, and how a refusal names it.
SPECIAL_FILES = {
    'device': 'a character device',
    'fifo': 'a FIFO (named pipe)',
    'symlink': 'a symbolic link',
    'folder': 'a folder',
}


def special_file(folder, kind: str) -> str:
    """A path in ``folder`` that holds no regular file, to be refused as an
    output.

    Args:
        folder (str | Path): Where to make it.
        kind (str): A key of :data:`SPECIAL_FILES`: ``'device'`` (a
            character device like ``/dev/null``, made here: a write that
            failed to refuse replaces only this node; ``/dev/null`` itself
            where nodes cannot be made, i.e. without root, so that the
            process cannot replace it either), ``'fifo'``, ``'symlink'`` (to
            ``folder/target``, which holds ``b'target'``) or ``'folder'``.

    Returns:
        str: The path.
    """
    path = osp.join(str(folder), f'special_{kind}')
    if kind == 'device':
        try:
            os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
        except PermissionError:
            return '/dev/null'
    elif kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'symlink':
        target = osp.join(str(folder), 'target')
        with open(target, 'wb') as f:
            f.write(b'target')
        os.symlink(target, path)
    else:
        os.mkdir(path)
    return path


def disk_full_for(monkeypatch, pattern: str) -> None:
    """Make the atomic writes of files whose name matches ``pattern``
    (fnmatch) fail as on a full disk: the fsync of their temporary file
    raises ``ENOSPC``, where the kernel reports it under delayed allocation
    (other fsyncs run).

    Args:
        monkeypatch (pytest.MonkeyPatch): Undoes it after the test.
        pattern (str): A target file name pattern, e.g. ``'deploy.pth'``.
    """
    fsync = os.fsync

    def full(fd):
        name = osp.basename(os.readlink(f'/proc/self/fd/{fd}'))
        if fnmatch.fnmatch(name, f'.{pattern}.*.tmp'):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return fsync(fd)

    monkeypatch.setattr(os, 'fsync', full)


class DeadlineExceeded(BaseException):
    """A :func:`deadline` passed (no ``Exception``: code that catches
    ``OSError`` or ``Exception`` must not swallow it and block again)."""


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail the block (:class:`DeadlineExceeded`) if it runs longer than
    ``seconds``: a read that blocks (a FIFO without a writer) fails the
    test instead of hanging the suite. Main thread only (``SIGALRM``).

    Args:
        seconds (int): The limit.
    """

    def expired(signum, frame):
        raise DeadlineExceeded(f'still running after {seconds} s')

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
