"""Room: `modeling/`. Folding an adapter into a plain `CLIPModel`: the `Merging` half of
`PromptCLIPPreTrainedModel`.

Only an adapter that is a change of CLIP's own weights (low-rank updates) can be merged; a method says so by
overriding `merge_problem` (`None`) and `merge_and_unload`. `save_merged` is generic: it writes the merged CLIP
with the tokenizer, the image processor and `classes.json`, so that the stock zero-shot pipeline gives the
adapter's predictions with no package installed (`hf-prompt-clip merge ADAPTER OUTPUT`). A mixin of
`PromptCLIPPreTrainedModel`; it reads of the model: `tokenizer`, `image_processor`, `class_names` and `config`.

Example:
    ```python
    if model.merge_problem is None:
        model.save_merged("merged")      # a plain CLIP folder + classes.json
    ```
"""

from __future__ import annotations

import json
import os

from transformers import CLIPModel

from .text import prompt_class_name

#: The file of a merged CLIP folder (`save_merged`) recording its classes and prompt template.
MERGED_CLASSES_FILE = "classes.json"

__all__ = ["MERGED_CLASSES_FILE", "Merging"]


class Merging:
    """Merging an adapter into a plain `CLIPModel` (see the module docstring)."""

    @property
    def merge_problem(self) -> str | None:
        """Why the adapter cannot be folded into a plain `CLIPModel` (`merge_and_unload`), or `None` when it
        can (a method whose adapter only changes CLIP's own weights says so by overriding this)."""
        return (
            f"{type(self).__name__} classifies with tensors of its own beside CLIP's weights (prompts, heads or "
            "caches that a plain CLIPModel has no place for), so it cannot be merged into a plain CLIPModel"
        )

    def merge_and_unload(self) -> CLIPModel:
        """A plain `CLIPModel` whose features are this model's, with the adapter folded into its weights (this
        model unchanged), its config recording the classes (`id2label`) and the prompt template
        (`prompt_template`). Only for adapters that are changes of CLIP's weights (`merge_problem` is `None`).

        Raises:
            ValueError: `merge_problem` says why this adapter cannot be merged.
        """
        raise ValueError(f"{self.merge_problem}: use the adapter folder itself (AutoModel, pipelines).")

    def save_merged(self, save_directory: str | os.PathLike) -> str:
        """Write `merge_and_unload()` as a plain CLIP folder: weights and config, the tokenizer, the image
        processor and `classes.json` (`class_names`, their `prompt_names` and the `template`: the stock
        zero-shot pipeline's `candidate_labels` and `hypothesis_template`, which then give the adapter's
        predictions with no package installed). Returns the folder.

        Raises:
            ValueError: the adapter cannot be merged (`merge_problem`).

        Example:
            ```python
            folder = model.save_merged("merged")
            classes = json.load(open(f"{folder}/classes.json"))
            pipeline("zero-shot-image-classification", model=folder)(
                image, candidate_labels=classes["prompt_names"], hypothesis_template=classes["template"]
            )
            ```
        """
        merged = self.merge_and_unload()
        save_directory = os.fspath(save_directory)
        merged.save_pretrained(save_directory)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(save_directory)
        if self.image_processor is not None:
            self.image_processor.save_pretrained(save_directory)
        record = {
            "class_names": self.class_names,
            "prompt_names": [prompt_class_name(name) for name in self.config.class_prompt_names],
            "template": getattr(merged.config, "prompt_template", "{}"),
        }
        with open(os.path.join(save_directory, MERGED_CLASSES_FILE), "w", encoding="utf-8") as file:
            json.dump(record, file, indent=2)
        return save_directory
