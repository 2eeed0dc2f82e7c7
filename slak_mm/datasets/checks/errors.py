"""The error a dataset check raises, and how it names examples."""
import re
from typing import Any, Sequence

__all__ = ['MAX_NAMED', 'DatasetError', 'examples']

#: How many example files an error names at most.
MAX_NAMED = 5

# torch re-raises a DataLoader worker's exception as
# ``type("Caught T in DataLoader worker process N.\nOriginal Traceback...")``
_WORKER_WRAPPED = re.compile(
    r'^Caught \w+ (in DataLoader worker process \d+)\.\nOriginal Traceback')


class DatasetError(ValueError):
    """A damaged or inconsistent dataset file.

    The message is one line naming the file, the problem and the fix. When
    torch re-raises it from a DataLoader worker (wrapping the worker's
    traceback into the message), the original line is kept and the worker
    named after it, so the tools still print one line.

    Args:
        message (str): What is wrong, with the file's path.
    """

    def __init__(self, message: str) -> None:
        message = str(message)
        wrapped = _WORKER_WRAPPED.match(message)
        if wrapped:
            last = message.rstrip().splitlines()[-1]
            _, found, original = last.partition('DatasetError: ')
            if found:
                message = f'{original} ({wrapped.group(1)})'
        super().__init__(' '.join(message.split()))


def examples(items: Sequence[Any], quote: bool = True) -> str:
    """At most :data:`MAX_NAMED` of ``items`` for a message, and how many
    more there are.

    Args:
        items (Sequence): What to name (files, ids).
        quote (bool): ``repr`` each (file names) or ``str`` (descriptions).

    Returns:
        str: ``'a', 'b' and 3 more``.
    """
    shown = ('; ', ', ')[quote].join(
        repr(i) if quote else str(i) for i in list(items)[:MAX_NAMED])
    more = len(items) - MAX_NAMED
    return shown + (f' and {more} more' if more > 0 else '')
