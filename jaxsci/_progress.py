"""One home for progress bars: `progress_bar` (tqdm on a terminal only) and
`progress_silenced`, which turns every bar off (e.g. `jaxsci run --quiet`)."""

import contextlib
from collections.abc import Iterator
from typing import Any

from tqdm.auto import tqdm

_silenced = [0]


@contextlib.contextmanager
def progress_silenced() -> Iterator[None]:
    """Inside the block no `progress_bar` is shown, whatever its caller asked."""
    _silenced[0] += 1
    try:
        yield
    finally:
        _silenced[0] -= 1


def progress_bar(enabled: bool, **kwargs: Any) -> tqdm:
    """A tqdm bar (`kwargs` as tqdm's, `leave=False` by default), shown when `enabled`, stderr
    is a terminal and no `progress_silenced()` block is active."""
    disable = True if not enabled or _silenced[0] else None  # None: on a terminal only
    return tqdm(disable=disable, **{"leave": False, **kwargs})
