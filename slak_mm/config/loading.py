"""Reading a config: ``--cfg-options`` with top-level variables re-bound,
and errors in the file or the options as one line.

What the mm tools do with ``--cfg-options``, plus what they lack: a
top-level variable (``checkpoint``, ``data_root``) overridden there is
re-bound everywhere the config used its value, so ``--cfg-options
checkpoint=PATH`` reaches ``model.backbone.init_cfg``; a value of the wrong
type (``optim_wrapper.optimizer.lr=abc``, which mmengine keeps as a string
and the optimizer fails on deep in training) is refused naming the key. A
config file with a syntax error or one raised by its code (a ``NameError``)
is named with the file and line, and an image or checkpoint given as the
config is named as such (mmengine: a traceback each). The config scopes
(``_base_ = 'mmseg::...'`` on the onedl forks, ``slak_mm::`` bases) are
registered first (:func:`~slak_mm.config.register_config_scopes`).
"""
import ast
import linecache
import os.path as osp
import re
from typing import Any, List, Optional

from mmengine.config import Config

from slak_mm.utils.image_formats import IMG_EXTENSIONS
from .bases import base_clash_line
from .scopes import register_config_scopes

__all__ = [
    'dict_option_problem', 'load_config', 'not_a_config', 'rebind_value'
]

#: The file types mmengine reads as configs.
CONFIG_EXTENSIONS = ('.py', '.json', '.yaml', '.yml')
#: File types given as a config by mistake, by what they are.
_NOT_CONFIGS = dict.fromkeys(IMG_EXTENSIONS, 'an image')
_NOT_CONFIGS.update(
    dict.fromkeys(('.pth', '.pt', '.ckpt', '.bin', '.safetensors'),
                  'a checkpoint'))


def not_a_config(path: str) -> Optional[str]:
    """Why ``path`` cannot be a config file, by its name: an image, a
    checkpoint or another type mmengine does not read.

    Args:
        path (str): What was given as the config.

    Returns:
        str | None: ``'PATH is an image, not a config'`` and the like;
        None for a config file name.
    """
    ext = osp.splitext(path)[1].lower()
    if ext in CONFIG_EXTENSIONS:
        return None
    if ext in _NOT_CONFIGS:
        return f'{path} is {_NOT_CONFIGS[ext]}, not a config'
    return (f'{path} is not a config: configs are '
            f'{", ".join(CONFIG_EXTENSIONS)} files')


def _syntax_error_line(err: SyntaxError, path: str) -> str:
    """One line for a config with a syntax error. mmengine parses each file
    (the given one, then its bases) with ``ast.parse``, so the error names
    no file (``<unknown>``): the file is the ``filename`` that mmengine's
    innermost config reader was given (else the config itself)."""
    file = path
    tb = err.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        name = frame.f_locals.get('filename')
        if frame.f_globals.get('__name__') == Config.__module__ and \
                isinstance(name, str) and osp.isfile(name):
            file = name
        tb = tb.tb_next
    # mmengine's own "There are syntax errors in config file ..." wraps
    # Python's error, which has the line
    inner = err if err.lineno or not isinstance(err.__context__,
                                                SyntaxError) else \
        err.__context__
    return _at_line(file, inner.lineno, f'SyntaxError: {inner.msg}')


def _at_line(file: str,
             lineno: Optional[int],
             what: str,
             where: str = 'config') -> str:
    line = linecache.getline(file, lineno or 0).strip()
    return (f'{where} {file}, line {lineno}: {what}' +
            (f' (in: {line})' if line else '') + '; fix the file')


def _raised_by_config_code(err: Exception, path: str) -> Optional[str]:
    """One line for an error that code raised while mmengine read the
    config: the file and line of the last module-level frame, the config
    (or a base) that mmengine ran, or a module it imported
    (``custom_imports``); None when no such code raised it (mmengine's own
    errors)."""
    last = None
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == '<module>':
            last = tb
        tb = tb.tb_next
    if last is None:
        return None
    frame, what = last.tb_frame, f'{type(err).__name__}: {err}'
    module = frame.f_globals.get('__spec__')  # None for the config's code
    where = f'config {path}: importing {module.name} from' if module \
        else 'config'
    return _at_line(frame.f_code.co_filename, last.tb_lineno, what, where)


def _read_config_file(path: str, scoped: bool) -> Config:
    try:
        if scoped:  # mmengine resolves a scoped name as a base, not a file
            return Config.fromstring(f'_base_ = [{path!r}]', '.py')
        return Config.fromfile(path)
    except SyntaxError as err:
        raise ValueError(_syntax_error_line(err, path)) from err
    except Exception as err:
        line = _raised_by_config_code(err, path)
        if line is None and 'Duplicate key is not allowed among bases' in \
                str(err):
            line = base_clash_line(path)
        if line is None and isinstance(err, ImportError):  # custom_imports
            while isinstance(err.__cause__ or err.__context__, ImportError):
                err = err.__cause__ or err.__context__  # mmengine wraps it
            line = (f'config {path}: {type(err).__name__}: {err} (a module '
                    f'its custom_imports name); install it or fix the name')
        if line is None:
            raise
        raise ValueError(line) from err


_MISSING = object()


def _config_value(cfg: Config, key: str) -> Any:
    """The value at the dotted ``key`` (list items by index, as
    ``merge_from_dict`` takes them), or ``_MISSING``."""
    node: Any = cfg
    for part in key.split('.'):
        if isinstance(node, (Config, dict)):
            node = node.get(part, _MISSING)
        elif isinstance(node, (list, tuple)) and part.isdigit():
            node = node[int(part)] if int(part) < len(node) else _MISSING
        else:
            return _MISSING
    return node


def _check_option_types(cfg: Config, cfg_options: dict) -> None:
    """Refuse an option whose value cannot stand where the config has a
    number, True/False or a dict: mmengine's ``DictAction`` keeps what it
    cannot parse as a string (``lr=abc``), which fails deep in the run."""
    for key, value in cfg_options.items():
        old = _config_value(cfg, key)
        if isinstance(old, dict):
            if value is not None and not isinstance(value, dict):
                raise ValueError(
                    f'--cfg-options {key}={value!r}: the config has a dict '
                    f'there; set its keys one by one ({key}.KEY=VALUE), or '
                    f'{key}=None to drop it')
            continue
        if isinstance(old, bool):
            expected = 'True or False'
        elif isinstance(old, (int, float)):
            expected = 'a number'
        else:
            continue
        if isinstance(value, str):
            raise ValueError(
                f'--cfg-options {key}={value!r}: expected {expected} (the '
                f'config has {key}={old!r})')


def _flat_items(key: str, node: ast.AST) -> Optional[List[str]]:
    """``KEY.NAME=VALUE`` items that set what a ``dict(...)`` / ``{...}``
    literal holds, nested dicts flattened; None for anything else."""
    if isinstance(node, ast.Call) and isinstance(
            node.func, ast.Name) and node.func.id == 'dict' and not node.args:
        pairs = [(k.arg, k.value) for k in node.keywords]
    elif isinstance(node, ast.Dict) and all(
            isinstance(k, ast.Constant) for k in node.keys):
        pairs = [(k.value, v) for k, v in zip(node.keys, node.values)]
    else:
        return None
    items: List[str] = []
    for name, value in pairs:
        if name is None:  # dict(**other)
            return None
        nested = _flat_items(f'{key}.{name}', value)
        if nested is not None:
            items += nested
        elif isinstance(value, ast.Constant) and isinstance(value.value, str):
            items.append(f'{key}.{name}={value.value}')
        else:
            items.append(f'{key}.{name}=' +
                         ast.unparse(value).replace(' ', ''))
    return items


def dict_option_problem(key: str, value: str) -> Optional[str]:
    """Why ``--cfg-options KEY=VALUE`` cannot take ``VALUE``: a dict
    (``dict(...)`` or ``{...}``), which mmengine's ``DictAction`` keeps as a
    string (or, with a comma inside, recurses on until a
    ``RecursionError``). The line names the key and the items that set the
    dict's keys one by one.

    Args:
        key (str): The option's key.
        value (str): Its value, as given.

    Returns:
        str | None: The problem; None for a value ``DictAction`` reads.
    """
    text = value.strip().strip('\'"')
    if not (text.startswith('{') or re.search(r'\bdict\(', text)):
        return None
    try:
        items = _flat_items(key, ast.parse(text, mode='eval').body)
    except SyntaxError:
        items = None
    how = ' '.join(items) if items else f'{key}.KEY=VALUE ...'
    return (f'--cfg-options {key}={value}: a dict cannot be given as one '
            f'value (only numbers, strings, True/False/None, [lists] and '
            f'(tuples)); set its keys one by one: {how}, or write a config '
            f'that inherits this one (_base_) and sets the dict')


def rebind_value(node: Any, old: str, new: str) -> Any:
    """Replace the string ``old`` by ``new`` under ``node``, also as the
    leading path of longer strings (``data_root + 'annotations/...'``).

    Args:
        node (Any): A config node; dicts are changed in place.
        old (str): The value to replace.
        new (str): Its replacement.

    Returns:
        Any: The node with the values replaced (a new list / tuple).
    """
    if isinstance(node, dict):
        for key, value in node.items():
            node[key] = rebind_value(value, old, new)
        return node
    if isinstance(node, (list, tuple)):
        return type(node)(rebind_value(v, old, new) for v in node)
    if isinstance(node, str):
        if node == old:
            return new
        if node.startswith(old.rstrip('/') + '/'):  # e.g. data_root + '/ann'
            return new.rstrip('/') + node[len(old.rstrip('/')):]
    return node


def rebind_key(node: Any, key: str, old: Any, new: Any) -> None:
    """Set ``new`` in place of ``old`` wherever a dict under ``node`` holds
    ``old`` at ``key`` (a number variable such as ``num_classes``, whose
    value alone could be any other count).

    Args:
        node (Any): A config node; dicts are changed in place.
        key (str): The key, the variable's name.
        old (Any): The value to replace.
        new (Any): Its replacement.
    """
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key and value == old and _is_number(value):
                node[name] = new
            else:
                rebind_key(value, key, old, new)
    elif isinstance(node, (list, tuple)):
        for value in node:
            rebind_key(value, key, old, new)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config and apply ``--cfg-options``.

    A top-level string variable named in ``cfg_options`` (for example
    ``checkpoint`` or ``data_root``) is replaced everywhere its old value was
    used, also as the leading path of longer strings
    (``data_root + '/annotations/...'``), not only at the top level. A
    top-level number variable (``num_classes``) is replaced where a key of
    its name held its value (``model.head.num_classes``).
    ``--cfg-options`` reads ``data_root=2016`` as the number 2016; a number
    given for a ``data_root`` key (also a nested one) is taken as the path
    it spells (``'2016'``).

    Args:
        path (str): Config file, or a packaged one as a ``_base_`` names it
            (``'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'``).
        cfg_options (dict, optional): Parsed ``--cfg-options``.

    Returns:
        Config: The merged config.

    Raises:
        FileNotFoundError: No file at ``path``.
        ValueError: ``path`` is no config (an image, a checkpoint), the
            file has a syntax error or its code raised one (named with file
            and line), or an option's value cannot stand where the config
            has a number, True/False or a dict (``lr=abc``).
    """
    scoped = '::' in path and not osp.exists(path)
    if not scoped and not osp.isfile(path):
        raise FileNotFoundError(f'Config file not found: {path!r}')
    if not_a_config(path):
        raise ValueError(f'{not_a_config(path)}: give the config file there')
    register_config_scopes()  # before the bases are read; idempotent
    cfg = _read_config_file(path, scoped)
    cfg_options = dict(cfg_options or {})
    _check_option_types(cfg, cfg_options)
    for key in list(cfg_options):
        old = cfg.get(key) if '.' not in key else None
        value = cfg_options[key]
        if key.split('.')[-1] == 'data_root' and _is_number(value):
            cfg_options[key] = str(value)  # a folder named 2016
        if isinstance(old, str) and isinstance(cfg_options[key], str):
            new = cfg_options.pop(key)
            for top_key in list(cfg.keys()):
                cfg[top_key] = rebind_value(cfg[top_key], old, new)
            cfg[key] = new
        elif _is_number(old) and _is_number(cfg_options[key]):
            new = cfg_options.pop(key)
            for top_key in list(cfg.keys()):
                rebind_key(cfg[top_key], key, old, new)
            cfg[key] = new
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg
