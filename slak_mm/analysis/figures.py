"""Figures saved atomically (the analysis tools' plots)."""
import io
import os.path as osp

from slak_mm.fileio import atomic_write_bytes

__all__ = ['save_figure']


def save_figure(fig, path: str, **savefig_kwargs) -> str:
    """``fig.savefig(path, ...)`` through :func:`slak_mm.fileio.
    atomic_write_bytes`: matplotlib writes in place, so a full disk left a
    truncated image instead of the old one.

    Args:
        fig (matplotlib.figure.Figure): The figure.
        path (str): The image file; its extension picks the format
            (``.png`` when it has none).
        **savefig_kwargs: Passed to ``savefig`` (``dpi``, ``bbox_inches``).

    Returns:
        str: ``path``.
    """
    buffer = io.BytesIO()
    fmt = osp.splitext(path)[1][1:].lower() or 'png'
    fig.savefig(buffer, format=fmt, **savefig_kwargs)
    atomic_write_bytes(buffer.getvalue(), path)
    return path
