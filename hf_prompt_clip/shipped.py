"""Base models shipped inside the package, loadable by a portable name.

Room: `shipped.py`.

`TINY_CLIP_ID` names the tiny CLIP pretrained on the synthetic world (`hf_prompt_clip.synthetic`).
Adapters trained on it record this name, not a machine's folder, and `import hf_prompt_clip`
registers it, so `AutoModel.from_pretrained(adapter_folder)` finds the base on any machine.
"""

from __future__ import annotations

from pathlib import Path

from .serialization.loading import register_base_model_alias

TINY_CLIP_FOLDER = Path(__file__).resolve().parent / "assets" / "tiny-clip"
#: the name adapters record for the shipped tiny CLIP (resolved to its folder when loading)
TINY_CLIP_ID = "hf-prompt-clip/tiny-clip-synthetic"


def tiny_clip_path() -> str:
    """The folder of the shipped tiny CLIP, for `CLIPModel.from_pretrained` and `from_clip`.

    Adapters built with `from_clip(tiny_clip_path(), ...)` record this folder; to save adapters
    that load on other machines, build them with `from_clip(TINY_CLIP_ID, ...)`.

    Example:
        ```python
        from hf_prompt_clip import ZeroShotCLIPModel
        from hf_prompt_clip.synthetic import TINY_CLIP_ID, class_names
        model = ZeroShotCLIPModel.from_clip(TINY_CLIP_ID, class_names("colour_shape"))
        ```
    """
    return str(TINY_CLIP_FOLDER)


register_base_model_alias(TINY_CLIP_ID, tiny_clip_path)
