"""The package's import structure, read from the source (ast): no import
cycle inside slak_mm, imports go down the layers only, the torch + timm
core (the network and what it needs) imports no OpenMMLab; and what importing
it changes in mmengine: its config reader takes ``slak_mm::`` and the onedl
forks' ``mmseg::`` bases (so the mm Python API reads our configs), mapping
each scope when a base first names it, nothing else in its scope table.

The earlier rule, "no scope registration at import", kept ``Config.fromfile``
and the inferencers from reading a config with a ``slak_mm::`` base after
``import slak_mm`` (issue #23); a config cannot register them itself, as
mmengine reads the bases before its ``custom_imports``."""
import ast
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, Iterator, List, Set, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = 'slak_mm'

#: The layers, lowest first: a module imports from its own layer and the
#: layers below it, never from a layer above (also not inside a function).
LAYERS: List[Tuple[str, ...]] = [
    # torch / stdlib helpers and the registries, no slak_mm layer above
    ('version', 'config_path', 'fileio', 'registry', 'ops', 'sparse', 'utils',
     'datasets'),
    ('checkpoint', ),  # reading, writing and mapping checkpoint files
    ('network', ),  # SLaK in torch + timm, registered in timm
    ('models', 'engine'),  # the mm backbone, classifier, runner hooks ...
    ('config', ),  # loading, adapting and checking configs
    ('deploy', ),  # re-parameterisation and ONNX export
    ('apis', 'analysis', 'benchmark', 'compat', 'mm_tool',
     'selfcheck'),  # actions behind tools
    ('cli', ),  # what the command lines share
]

#: What imports without OpenMMLab (a bare GPU box, a timm project): the
#: network and everything it needs, and the torch-only tools. Whole
#: subpackages, then single modules (names below ``slak_mm``).
TORCH_ONLY_PACKAGES = ('network', 'ops', 'sparse', 'utils', 'selfcheck')
TORCH_ONLY_MODULES = ('', 'version', 'config_path', 'fileio', 'checkpoint',
                      'checkpoint.reading', 'checkpoint.safe_numpy',
                      'checkpoint.remote', 'checkpoint.official',
                      'checkpoint.embedded_config', 'benchmark',
                      'benchmark.op', 'benchmark.timing')
OPENMMLAB = ('mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain')


def _modules() -> Dict[str, str]:
    """Every module of the package: dotted name -> file."""
    found = {}
    for folder, dirs, files in os.walk(osp.join(ROOT, PACKAGE)):
        dirs[:] = [d for d in dirs if not d.startswith(('.', '__'))]
        rel = osp.relpath(folder, ROOT).replace(os.sep, '.')
        for name in files:
            if name.endswith('.py'):
                stem = name[:-3]
                found[rel if stem == '__init__' else f'{rel}.{stem}'] = \
                    osp.join(folder, name)
    return found


MODULES = _modules()


def _imports(tree: ast.AST,
             module_level: bool) -> Iterator[Tuple[ast.stmt, int]]:
    """Import statements of ``tree``; ``module_level``: not those inside a
    function (which run only when it is called)."""
    todo = list(ast.iter_child_nodes(tree))
    while todo:
        node = todo.pop()
        if module_level and isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, node.lineno
        todo.extend(ast.iter_child_nodes(node))


def _targets(module: str, node: ast.stmt) -> Set[str]:
    """The slak_mm modules an import statement loads (by name, not the
    parent packages Python loads on the way)."""
    is_package = MODULES[module].endswith('__init__.py')
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ''
        if node.level:
            parts = module.split('.')
            keep = len(parts) - node.level + (1 if is_package else 0)
            base = '.'.join(parts[:keep] + ([base] if base else []))
        # `from pkg import sub` loads the submodule pkg.sub (pkg itself is
        # a parent, loaded on the way); `from pkg import name` reads pkg
        names = [
            f'{base}.{alias.name}'
            if f'{base}.{alias.name}' in MODULES else base
            for alias in node.names
        ]
    return {n for n in names if n in MODULES}


def _graph(module_level: bool) -> Dict[str, Dict[str, int]]:
    """module -> {imported slak_mm module: line}."""
    graph = {}
    for module, path in MODULES.items():
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        edges = {}
        for node, line in _imports(tree, module_level):
            for target in _targets(module, node):
                if target != module:
                    edges.setdefault(target, line)
        graph[module] = edges
    return graph


def _cycles(graph: Dict[str, Dict[str, int]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _layer(module: str) -> int:
    """Index in :data:`LAYERS` of a module's top-level name (-1: the
    package root, which imports what registers the modules)."""
    parts = module.split('.')
    if len(parts) == 1:
        return -1
    for i, names in enumerate(LAYERS):
        if parts[1] in names:
            return i
    return -2


def _describe(graph: Dict[str, Dict[str, int]], component: List[str]) -> str:
    """One cycle through the first module of a component, with the lines
    of the imports."""
    start, members = component[0], set(component)
    paths, todo = {start: [start]}, [start]
    while todo:
        node = todo.pop(0)
        for succ in sorted(graph[node]):
            if succ == start:
                path = paths[node] + [start]
                return ' -> '.join(
                    f'{a} (line {graph[a][b]})'
                    for a, b in zip(path, path[1:])) + f' -> {start}'
            if succ in members and succ not in paths:
                paths[succ] = paths[node] + [succ]
                todo.append(succ)
    return ', '.join(component)


def test_no_import_cycle_inside_slak_mm():
    graph = _graph(module_level=True)
    cycles = [_describe(graph, c) for c in _cycles(graph)]
    assert not cycles, 'import cycles:\n' + '\n'.join(cycles)


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in MODULES if _layer(m) == -2)
    assert not unplaced, (
        f'{unplaced}: add their top-level name to LAYERS in {__file__}')


def test_imports_go_down_the_layers():
    """Also inside functions: a lazy import is no way around the layers
    (e.g. analysis/ takes its configs from slak_mm.config, not apis)."""
    wrong = []
    for module, edges in _graph(module_level=False).items():
        low = _layer(module)
        for target, line in edges.items():
            if low >= 0 and _layer(target) > low:
                wrong.append(
                    f'{osp.relpath(MODULES[module], ROOT)}:{line} imports '
                    f'{target}')
    assert not wrong, 'imports from a higher layer:\n' + '\n'.join(wrong)


def _torch_only(module: str) -> bool:
    rel = module[len(PACKAGE) + 1:]
    return rel in TORCH_ONLY_MODULES or rel.split('.')[0] in \
        TORCH_ONLY_PACKAGES


def test_torch_only_core_imports_no_openmmlab():
    """The network (and what it imports) needs torch and timm only: the
    statements a torch-only module always runs (its body's imports; those
    under ``try`` / ``if`` add the mm parts where mmengine imports) name no
    OpenMMLab package and no slak_mm module outside the torch-only set.
    ``tests/test_torch_only_import.py`` imports it with OpenMMLab hidden."""
    wrong = []
    for module, path in sorted(MODULES.items()):
        if not _torch_only(module):
            continue
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        for node in tree.body:
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = [a.name for a in node.names] if isinstance(
                node, ast.Import) else [node.module or '']
            mm = [n for n in names if n.split('.')[0] in OPENMMLAB]
            ours = [t for t in _targets(module, node) if not _torch_only(t)]
            if mm or ours:
                wrong.append(f'{osp.relpath(path, ROOT)}:{node.lineno} '
                             f'imports {mm + ours}')
    assert not wrong, 'OpenMMLab in the torch-only core:\n' + '\n'.join(wrong)


def _public_names(path: str):
    """A module's ``__all__`` (None if it defines none): its assignment and
    what ``__all__ +=`` adds (also under ``if`` / ``try``: the parts a
    package exports where their framework is installed)."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    names = None
    for node in ast.walk(tree):
        targets = node.targets if isinstance(
            node, ast.Assign) else [node.target] if isinstance(
                node, ast.AugAssign) else []
        if any(getattr(t, 'id', None) == '__all__' for t in targets):
            names = (names or set()) | {
                n.value
                for n in ast.walk(node.value)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)
            }
    return names


def test_tools_and_tests_import_public_names():
    """What tools, demos and tests take from slak_mm is public: no leading
    underscore, and in the module's ``__all__`` where it has one."""
    users = []
    for folder in ('tests', 'tools', 'demo'):
        for parent, _, names in os.walk(osp.join(ROOT, folder)):
            users += [osp.join(parent, n) for n in names if n.endswith('.py')]
    wrong = []
    for path in sorted(users):
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and not node.level
                    and node.module in MODULES):
                continue
            public = _public_names(MODULES[node.module])
            for alias in node.names:
                if f'{node.module}.{alias.name}' in MODULES:
                    continue  # a submodule
                if alias.name.startswith('_') or (public is not None and
                                                  alias.name not in public):
                    wrong.append(f'{osp.relpath(path, ROOT)}:{node.lineno} '
                                 f'{node.module}.{alias.name}')
    assert not wrong, 'private or unlisted names:\n' + '\n'.join(wrong)


def test_import_makes_mmengine_read_our_scoped_bases(tmp_path):
    """In a fresh interpreter: a config naming slak_mm in custom_imports
    (with an ``mmdet::`` base, which mmengine reads alone) imports it; from
    then on ``Config.fromfile`` reads ``slak_mm::`` and ``mmseg::`` bases,
    and mmengine's scope table changed only for the scopes read."""
    (tmp_path / 'det.py').write_text(
        "_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']\n"
        "custom_imports = dict(imports=['slak_mm'], "
        'allow_failed_imports=False)\n'
        "model = dict(backbone=dict(_delete_=True, type='SLaK'))\n")
    (tmp_path / 'seg.py').write_text(
        "_base_ = ['mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py',\n"
        "          'slak_mm::_base_/slak_t_drop_in.py']\n"
        'model = dict(backbone=dict(_delete_=True, **_base_.slak_t))\n')
    code = """
import sys
from mmengine.config import Config
from mmengine.config import utils
table = dict(utils.MODULE2PACKAGE)
get_cfg_path = Config._get_cfg_path
cfg = Config.fromfile('det.py')
assert 'slak_mm' in sys.modules
assert Config._get_cfg_path is not get_cfg_path
assert utils.MODULE2PACKAGE == table, (table, utils.MODULE2PACKAGE)
from mmdet.registry import MODELS
assert MODELS.get('SLaK') is not None
cfg = Config.fromfile('seg.py')
assert cfg.model.backbone.type == 'SLaK', cfg.model.backbone
assert cfg.model.backbone.get('_scope_') is None  # read in mmseg's scope
assert cfg.model.decode_head.type == 'FPNHead'
changed = {k for k in utils.MODULE2PACKAGE if table.get(k) !=
           utils.MODULE2PACKAGE[k]}
assert changed <= {'mmseg', 'slak_mm'}, changed
print('reads', sorted(changed))
"""
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=str(tmp_path),
                          env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0 and 'reads' in proc.stdout, \
        proc.stderr[-2000:]
