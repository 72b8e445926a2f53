"""Loading an adapter with no setup: `trust_remote_code=True` finds the classes through an `auto_map`.

Room: `serialization/`.

transformers resolves an unknown `model_type` through the config's `auto_map`, which names a module
in the repository. Ours is a few lines that import the classes from the installed package (nothing is
copied: `register_for_auto_class` would copy module files whose relative imports do not travel), so

    AutoModel.from_pretrained("org/coop-vitb16-dtd", trust_remote_code=True)

works in a process that never imported `hf_prompt_clip`, and without the package installed
transformers' own check says `pip install hf_prompt_clip`. `import hf_prompt_clip` keeps working
without `trust_remote_code`.

`trust_remote_code=True` trusts the whole repository, not this module alone: transformers also runs the
modules that a `tokenizer_config.json` or `preprocessor_config.json` `auto_map` names (any file of the
repository, or of another one) and their relative imports. docs/reliability.md ("Security stance") says
what runs and what to check; `from_pretrained` refuses a config whose `model_type` is not the class built.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.registry import AUTO_MODEL_CLASSES
from ..utils.atomic import atomic_write_text
from ..utils.version import __version__

LOADER_MODULE = "hf_prompt_clip_loader"
"""The module written beside each saved adapter (`hf_prompt_clip_loader.py`)."""

_TEMPLATE = '''"""Loads this hf-prompt-clip adapter with `trust_remote_code=True` in a process that never imported the
package: the classes come from the installed package (`pip install hf-prompt-clip`); nothing of the
package is copied here. With the package imported, no remote code is needed at all.
"""

import hf_prompt_clip  # noqa: F401  (registers the model types and the shipped base models)

try:
    from {config_module} import {config_class}
    from {model_module} import {model_class}
except ImportError as error:  # an older release, without this method
    raise ImportError(
        f"This adapter was saved by hf-prompt-clip {version}; the installed hf-prompt-clip "
        f"{{hf_prompt_clip.__version__}} has no {model_class}. Upgrade: pip install -U 'hf-prompt-clip>={version}'"
    ) from error

__all__ = ["{config_class}", "{model_class}"]
'''


def auto_map(model_class: type) -> dict[str, str]:
    """The config's `auto_map`: `AutoConfig` and every Auto model class -> `hf_prompt_clip_loader.<class>`.

    Example:
        >>> auto_map(CoOpModel)["AutoModel"]
        'hf_prompt_clip_loader.CoOpModel'
    """
    config_class = model_class.config_class
    entries = {"AutoConfig": f"{LOADER_MODULE}.{config_class.__name__}"}
    for auto_class in AUTO_MODEL_CLASSES:
        entries[auto_class.__name__] = f"{LOADER_MODULE}.{model_class.__name__}"
    return entries


def write_loader_module(folder: str | os.PathLike, model_class: type) -> Path:
    """Write `hf_prompt_clip_loader.py` for `model_class` into a saved adapter folder; returns its path."""
    config_class = model_class.config_class
    path = Path(folder) / f"{LOADER_MODULE}.py"
    atomic_write_text(
        path,
        _TEMPLATE.format(
            config_module=config_class.__module__,
            config_class=config_class.__name__,
            model_module=model_class.__module__,
            model_class=model_class.__name__,
            version=__version__,
        ),
        encoding="utf-8",
    )
    return path
