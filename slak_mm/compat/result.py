"""One row of the sweep: what a family's trial gave."""
from dataclasses import asdict, dataclass, field
from typing import Dict, List

__all__ = ['Result']


@dataclass
class Result:
    """What one family's trial gave: one row of the table.

    Attributes:
        family (str): ``package/folder``.
        config (str): The representative config (relative to the
            package's configs folder); empty where none was picked.
        outcome (str): ``'pass'`` (trained and tested), ``'fail'`` or
            ``'n/a'`` (a CNN backbone makes no sense there).
        stage (str): Where it stopped: ``'config'``, ``'check'``,
            ``'train'``, ``'test'``, ``'process'`` (crash, time or memory
            limit).
        message (str): The error, one line (or why not applicable).
        where (str): The file and line that raised it.
        user_sets (list[str]): What the user's config sets besides the
            backbone swap, and the fixes the check asked for.
        data (str): The dataset swap made, if any.
        metrics (dict): The test metrics.
        seconds (float): Wall time of the trial.
    """
    family: str
    config: str = ''
    outcome: str = 'fail'
    stage: str = ''
    message: str = ''
    where: str = ''
    user_sets: List[str] = field(default_factory=list)
    data: str = ''
    metrics: Dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """The result as plain data (JSON)."""
        return asdict(self)
