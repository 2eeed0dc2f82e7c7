"""Where slak_mm's library messages go.

With mmengine installed they go to its current logger (a run's log file and
console, as mmengine's own messages); without it (a bare GPU box, timm
users) to Python's ``slak_mm`` logger. The torch-only modules (checkpoint
reading, the network) report through :func:`log_message` so that they need
no mmengine.
"""
import logging

__all__ = ['log_message']


def log_message(message: str, level: int = logging.INFO) -> None:
    """Log ``message`` where the user looks for it.

    Args:
        message (str): The text.
        level (int): A ``logging`` level. Default: ``logging.INFO``.
    """
    try:
        from mmengine.logging import print_log
    except ModuleNotFoundError as err:
        if err.name != 'mmengine':  # a broken install must not pass silently
            raise
        logging.getLogger('slak_mm').log(level, message)
        return
    print_log(message, logger='current', level=level)
