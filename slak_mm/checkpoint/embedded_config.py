"""Config text stored inside checkpoints, which mmengine executes.

mmengine saves the run's config as Python text in ``meta.config``,
``meta.cfg`` and ``message_hub.runtime_info.cfg``, and runs it with
``Config.fromstring(text, '.py')`` when it resumes (``Runner.resume``
reads ``gpu_ids``) and when an inferencer is given weights without a
config (``BaseInferencer._init_model``). A file that passes the pickle
allow-list can still carry ``import os; os.system(...)`` there. What
mmengine writes is data only (``name = dict(key=literal, ...)``), so text
with anything else is refused, unless the user opted into unsafe loads.
"""
import ast
from typing import Any, Iterator, Optional, Tuple

__all__ = [
    'EMBEDDED_CONFIG_ENTRIES', 'code_in_config_text', 'embedded_configs'
]

#: Where mmengine keeps config text in a checkpoint (dotted keys).
EMBEDDED_CONFIG_ENTRIES = ('meta.config', 'meta.cfg',
                           'message_hub.runtime_info.cfg')

# what a dumped config (Config.pretty_text) is made of
_DATA_NODES = (ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict,
               ast.UnaryOp, ast.USub, ast.UAdd, ast.Call, ast.keyword)


def _entry(checkpoint: dict, dotted: str) -> Any:
    node: Any = checkpoint
    for key in dotted.split('.'):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def embedded_configs(checkpoint: Any) -> Iterator[Tuple[str, Any]]:
    """The config entries a checkpoint holds.

    Args:
        checkpoint: A loaded checkpoint (anything; only dicts hold some).

    Yields:
        tuple[str, Any]: The dotted entry (``'meta.config'``) and its value.
    """
    if not isinstance(checkpoint, dict):
        return
    for dotted in EMBEDDED_CONFIG_ENTRIES:
        value = _entry(checkpoint, dotted)
        if value is not None:
            yield dotted, value


def code_in_config_text(text: Any) -> Optional[str]:
    """What in ``text`` is more than data, or None if it is data only.

    Data: assignments of a name to literals, lists, tuples, sets, dicts
    and ``dict(key=value, ...)`` / ``dict({'key': value})`` calls, as
    ``Config.pretty_text`` writes them. Anything else (imports, other
    calls, names, attributes, subscripts, lambdas, comprehensions,
    f-strings, ...) could run code when mmengine executes the text; so
    could rebinding ``dict`` (to ``open``, say).

    Args:
        text: The entry's value (a config text is a ``str``).

    Returns:
        str | None: ``'line N: <code>'`` for the first statement that is
        more than data (or why the text cannot be judged); None for data.
    """
    if not isinstance(text, str):
        return f'a {type(text).__name__}, not config text'
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        return f'text that does not parse as Python ({type(err).__name__})'
    for statement in tree.body:
        if not _is_data(statement):
            code = ' '.join(ast.get_source_segment(text, statement).split())
            return f'line {statement.lineno}: {code[:80]}'
    return None


def _is_data(statement: ast.stmt) -> bool:
    if not (isinstance(statement, ast.Assign) and all(
            isinstance(t, ast.Name) and t.id != 'dict'
            for t in statement.targets)):
        return False
    todo = [statement.value]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Call):
            # dict(key=...) and dict({'key.with.dots': ...})
            if not (isinstance(node.func, ast.Name) and node.func.id == 'dict'
                    and len(node.args) <= 1 and all(
                        isinstance(a, ast.Dict)
                        for a in node.args) and all(k.arg is not None
                                                    for k in node.keywords)):
                return False
            todo.extend([*node.args, *(k.value for k in node.keywords)])
        elif isinstance(node, _DATA_NODES):
            todo.extend(
                child for child in ast.iter_child_nodes(node)
                if not isinstance(child, (ast.Load, ast.USub, ast.UAdd)))
        else:
            return False
    return True
