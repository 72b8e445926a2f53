"""The package version (the one source: `pyproject.toml` reads it from here), recorded in every saved
adapter config (`hf_prompt_clip_version`) so an adapter from a newer release is recognised as such.

Room: `utils/`.
"""

from __future__ import annotations

__version__ = "0.1.0"

PACKAGE = "hf-prompt-clip"


def is_newer(version: str | None, than: str = __version__) -> bool:
    """Whether release `version` is newer than `than` (the installed one); `False` when unknown.

    Example:
        >>> is_newer("0.3.0", "0.1.0"), is_newer(None)
        (True, False)
    """
    return compare_releases(version, than) == 1


def compare_releases(version: str | None, than: str = __version__) -> int | None:
    """-1, 0 or 1 as release `version` is older than, the same as or newer than `than`; `None` when
    `version` is missing or no release number.

    Example:
        >>> compare_releases("0.3.0", "0.1.0"), compare_releases("0.1.0", "0.1.0"), compare_releases("x")
        (1, 0, None)
    """
    from packaging.version import InvalidVersion, Version

    try:
        mine, theirs = Version(than), Version(version) if version is not None else None
    except InvalidVersion:
        return None
    if theirs is None:
        return None
    return (theirs > mine) - (theirs < mine)


def upgrade_advice(version: str | None) -> str:
    """`pip install -U "hf-prompt-clip>=0.3.0"` (or without the bound when the version is unknown)."""
    bound = f">={version}" if version else ""
    return f'pip install -U "{PACKAGE}{bound}"'
