"""Optional packages: OpenMMLab on a full install, absent on a bare GPU box
or in a timm project."""
import importlib

__all__ = ['has_package']


def has_package(name: str) -> bool:
    """Whether the optional package ``name`` imports.

    Args:
        name (str): A top-level package, e.g. ``'mmengine'``.

    Returns:
        bool: It imported; False when it is not installed.

    Raises:
        ImportError: It is installed but fails to import (a broken install
            must not pass for a missing one).
    """
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name != name:
            raise
        return False
    return True
