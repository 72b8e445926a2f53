"""Progress lines and bars that every process may reach but only the main one writes (one line per event,
one bar per node, not one per GPU).

Room: `utils/`.

Bars (`progress_bar`) are tqdm bars on stderr (a widget in a notebook), shown on each node's first process
only and silenced by the environment variable `TQDM_DISABLE` (which the command line's `--quiet` sets), read
when the bar is made: tqdm reads its own `TQDM_*` variables once, when tqdm is imported, and a bar given
`disable=` ignores them, so a variable set after the import (as `--quiet` does) silences only the bars made
here.

They are `tqdm.autonotebook` bars, not `tqdm.auto` ones: `tqdm.auto`'s asyncio base calls `iter()` on the
iterable as the bar is made and the loop then calls it again (tqdm/tqdm#1598), which starts a DataLoader's
workers twice and draws its base seed from torch's global RNG twice, changing what a seeded run draws
afterwards. A bar here iterates its iterable once and draws nothing (tested).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable
from typing import Any

from accelerate import PartialState
from tqdm.std import TqdmExperimentalWarning

with warnings.catch_warnings():  # as tqdm.auto imports it: no warning about notebook mode
    warnings.simplefilter("ignore", category=TqdmExperimentalWarning)
    from tqdm.autonotebook import tqdm

#: Values of `TQDM_DISABLE` that leave bars on (any other value silences them).
_BARS_ON = ("", "0", "false", "no", "off")


class MainProcessLogger(logging.LoggerAdapter):
    """A `logging.Logger` that writes on the main process only (`accelerate.PartialState`), without the
    rank prefix of `accelerate.logging`.

    Example:
        >>> logger = main_process_logger(__name__)
        >>> logger.info("evaluated on %s: %.2f %%", "dtd", 64.2)
    """

    def log(self, level: int, msg: object, *args, **kwargs) -> None:
        if self.isEnabledFor(level) and PartialState().is_main_process:
            super().log(level, msg, *args, **kwargs)


def main_process_logger(name: str) -> MainProcessLogger:
    """The `MainProcessLogger` of module `name` (a child of the package's `hf_prompt_clip` logger)."""
    return MainProcessLogger(logging.getLogger(name), {})


def progress_enabled() -> bool:
    """Whether this process shows progress bars: it is its node's first process and the environment does not
    silence them (`TQDM_DISABLE` set to anything but empty, `0`, `false`, `no` or `off`; `--quiet` sets it).

    Example:
        >>> progress_enabled()   # one process, TQDM_DISABLE unset
        True
    """
    if os.environ.get("TQDM_DISABLE", "").strip().lower() not in _BARS_ON:
        return False
    return PartialState().is_local_main_process


def progress_bar(
    iterable: Iterable | None = None,
    *,
    desc: str,
    total: float | None = None,
    unit: str = "it",
    leave: bool = False,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar on stderr (`tqdm.autonotebook`), shown only where `progress_enabled()` (silenced by
    `--quiet`); it never changes what it counts: iterating it iterates `iterable` once and yields it unchanged.

    Args:
        iterable: what to iterate (`None`: update the bar by hand, `bar.update(n)`).
        desc: what is running, e.g. `"encoding validation"`.
        total: the expected number of steps (default: `len(iterable)` when it has one).
        unit: what a step is (`"batch"`, `"image"`, `"C"`).
        leave: keep the finished bar on screen (the default clears it: the log line that follows says
            what was done).
        kwargs: other `tqdm` arguments (not `disable`).

    Example:
        >>> for batch in progress_bar(loader, desc="encoding test", unit="batch"):
        ...     features.append(encode(batch["pixel_values"]))
    """
    return tqdm(
        iterable, desc=desc, total=total, unit=unit, leave=leave, disable=not progress_enabled(), **kwargs
    )
