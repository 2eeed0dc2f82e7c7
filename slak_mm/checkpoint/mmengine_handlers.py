"""mmengine's YAML and pickle file handlers, made to run no code.

``mmengine.load`` (and so ``Config.fromfile`` of a ``.yaml`` config, a
dataset's ``ann_file`` read by its extension, metafiles) reads YAML with
PyYAML's full ``Loader``, which builds any Python object a tag names
(``!!python/object/apply:os.system [...]`` runs a command), and ``.pkl`` /
``.pickle`` with ``pickle.load``, which runs whatever the file asks.
:func:`use_safe_mmengine_handlers` registers, through mmengine's public
``file_handlers`` table, a YAML handler on ``yaml.SafeLoader`` (plain data:
what configs and annotations hold) and a pickle handler that refuses to
unpickle unless the user opted into unsafe loads. Writing is unchanged.
"""
import logging
import pickle
import sys

import yaml
from mmengine.config import Config
from mmengine.fileio import io as mm_io
from mmengine.fileio.handlers import PickleHandler, YamlHandler, file_handlers
from mmengine.logging import print_log

from .reading import UNSAFE_LOAD_ENV, unsafe_load_allowed

__all__ = [
    'SafeYamlHandler', 'UnpicklingRefusedHandler', 'UnsafeFileError',
    'use_safe_mmengine_handlers'
]

_SAFE_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


class UnsafeFileError(ValueError):
    """A data file that could only be read by running code from it."""


def _file_being_loaded() -> str:
    """The file ``mmengine.load`` is reading, for the message: its handlers
    get only the bytes (a ``StringIO`` / ``BytesIO``), so the name is
    taken from the callers' frames (``Config.fromfile`` first, which loads
    a temporary copy of the config)."""
    names = {
        mm_io.load.__code__: 'file',
        Config._file2dict.__code__: 'filename'
    }
    found = 'a file read by mmengine.load'
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code in names:
            found = repr(frame.f_locals.get(names[frame.f_code]))
        frame = frame.f_back
    return found


class SafeYamlHandler(YamlHandler):
    """mmengine's YAML handler on ``yaml.SafeLoader``: tags that build
    Python objects are an error naming the file, not code that runs."""

    def load_from_fileobj(self, file, **kwargs):
        if unsafe_load_allowed():
            return super().load_from_fileobj(file, **kwargs)
        kwargs['Loader'] = _SAFE_LOADER
        try:
            return yaml.load(file, **kwargs)
        except yaml.constructor.ConstructorError as err:
            raise UnsafeFileError(
                f'Refused to read {_file_being_loaded()}: YAML tag '
                f'{err.problem.split("tag ")[-1]} would build a Python '
                f'object (run code); slak_mm reads YAML as plain data. If '
                f'you trust the file, rerun with --unsafe-load (tools) or '
                f'{UNSAFE_LOAD_ENV}=1.') from None


class UnpicklingRefusedHandler(PickleHandler):
    """mmengine's pickle handler, refusing to unpickle (a pickle runs any
    code it names) unless the user opted into unsafe loads."""

    def load_from_fileobj(self, file, **kwargs):
        name = _file_being_loaded()
        if not unsafe_load_allowed():
            raise UnsafeFileError(
                f'Refused to unpickle {name}: unpickling can run arbitrary '
                f'code. Convert the file to JSON, or, if you trust it, '
                f'rerun with --unsafe-load (tools) or {UNSAFE_LOAD_ENV}=1.')
        print_log(
            f'{UNSAFE_LOAD_ENV}=1: unpickling {name}; any code pickled in '
            f'it runs now.',
            logger='current',
            level=logging.WARNING)
        return pickle.load(file, **kwargs)


def use_safe_mmengine_handlers() -> None:
    """Register :class:`SafeYamlHandler` and
    :class:`UnpicklingRefusedHandler` for mmengine's YAML and pickle
    extensions (idempotent)."""
    # mmengine's register_handler() is a decorator of handler classes that
    # asserts the formats are strings; the table it fills is public
    file_handlers.update(dict.fromkeys(['yaml', 'yml'], SafeYamlHandler()))
    file_handlers.update(
        dict.fromkeys(['pickle', 'pkl'], UnpicklingRefusedHandler()))
