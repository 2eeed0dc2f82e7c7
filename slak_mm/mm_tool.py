"""Run a framework's own tool with SLaK and ``mmseg::`` bases available.

``python -m slak_mm.mm_tool SCOPE TOOL [ARGS ...]``, for example::

    python -m slak_mm.mm_tool mmseg train CONFIG --work-dir DIR
    python -m slak_mm.mm_tool mmdet test CONFIG CHECKPOINT
    python -m slak_mm.mm_tool mmseg misc/print_config.py CONFIG

runs ``<package>/.mim/tools/TOOL.py`` (the tools mmdet / mmseg ship in
their packages; ``TOOL`` may also be a path to a tool file) as
``__main__`` with ``ARGS``. The frameworks' tools read the config (and its
bases) before any ``custom_imports``, so neither ``custom_imports`` nor an
import in a plugin can fix a ``mmseg::`` base for them; this wrapper maps
the scopes first (:func:`slak_mm.config.register_config_scopes`) and imports
``slak_mm``, which registers SLaK.
"""
import os.path as osp
import runpy
import sys
from typing import List, Optional

from mmengine.utils import get_installed_path

from slak_mm.config import register_config_scopes

USAGE = 'usage: python -m slak_mm.mm_tool SCOPE TOOL [ARGS ...]'


def find_tool(scope: str, tool: str) -> str:
    """Path of ``tool`` in the package of ``scope``.

    Args:
        scope (str): ``mmdet``, ``mmseg`` or ``mmpretrain`` (an import name).
        tool (str): ``train``, ``test``, a path below the package's
            ``.mim/tools`` (``misc/print_config.py``) or a tool file.

    Returns:
        str: The tool's file.

    Raises:
        FileNotFoundError: Naming the path looked for.
    """
    if osp.isfile(tool):
        return tool
    name = tool if tool.endswith('.py') else tool + '.py'
    path = osp.join(get_installed_path(scope), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{scope} has no tool {tool!r} (looked for {path}); give a tool '
            f'below {osp.dirname(osp.dirname(path))} or a path to one.')
    return path


def main(argv: Optional[List[str]] = None) -> None:
    """Run ``SCOPE TOOL ARGS`` (``argv``, default ``sys.argv[1:]``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) < 2 or argv[0] in ('-h', '--help'):
        raise SystemExit(USAGE)
    scope, tool, args = argv[0], argv[1], argv[2:]
    register_config_scopes()
    path = find_tool(scope, tool)
    sys.argv = [path, *args]  # the tool parses its own arguments
    runpy.run_path(path, run_name='__main__')


if __name__ == '__main__':
    main()
