"""Progress lines that every process may reach but only the main one writes (one line per event, not
one per GPU)."""

from __future__ import annotations

import logging

from accelerate import PartialState


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
