"""CLIP-LoRA: low-rank updates of a frozen CLIP's attention projections, applied with `peft`.

Room: `methods/`.
"""

from __future__ import annotations

import copy
import os

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file
from transformers import CLIPModel

from ...modeling.model import PromptCLIPPreTrainedModel
from ...modeling.prompts import TemplatePrompts
from ...modeling.vision import encode_image_tokens
from .config import CLIPLoRAConfig, lora_layer_indices

#: The name of the adapter inside `peft`'s layers (its default: what a stock `PeftModel` loads).
PEFT_ADAPTER = "default"
#: transformers' `CLIPAttention` module of each of the reference's projection letters.
PROJECTIONS = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "out_proj"}
#: The sub-folder of a saved adapter holding the same LoRA as a stock PEFT adapter.
PEFT_FOLDER = "peft"


def lora_target_pattern(config: CLIPLoRAConfig, clip: CLIPModel) -> str:
    """The regular expression of `LoraConfig.target_modules` (matched by `peft` against whole module names of
    a `CLIPModel`): the chosen projections of the chosen layers of the chosen towers.

    Example:
        >>> lora_target_pattern(CLIPLoRAConfig(encoder="text", position="top3"), clip)   # 12 text layers
        'text_model\\.encoder\\.layers\\.(9|10|11)\\.self_attn\\.(q_proj|k_proj|v_proj)'
    """
    projections = "|".join(PROJECTIONS[p] for p in config.params)
    towers = {"text": clip.config.text_config, "vision": clip.config.vision_config}
    parts = []
    for tower in config.tuned_towers:
        layers = lora_layer_indices(config.position, towers[tower].num_hidden_layers)
        indices = "|".join(str(i) for i in layers)
        parts.append(rf"{tower}_model\.encoder\.layers\.({indices})\.self_attn\.({projections})")
    return parts[0] if len(parts) == 1 else "|".join(f"({part})" for part in parts)


def lora_config(config: CLIPLoRAConfig, clip: CLIPModel, **peft_fields) -> LoraConfig:
    """The `peft.LoraConfig` of `config` for `clip`: rank `r`, `lora_alpha=alpha`, `lora_dropout=dropout_rate`,
    `use_rslora=True` (scale `alpha / sqrt(r)`, the reference's `loralib/layers.py`), A Kaiming-uniform and
    B zero (peft's default init, the reference's), no bias; `peft_fields` are further `LoraConfig` fields
    (`base_model_name_or_path`, `revision`)."""
    return LoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout_rate,
        use_rslora=True,
        target_modules=lora_target_pattern(config, clip),
        bias="none",
        **peft_fields,
    )


def merge_lora(clip: CLIPModel) -> CLIPModel:
    """A copy of `clip` with every LoRA layer folded into its base weight (`W + scale B A`) and replaced by it:
    a plain `CLIPModel` (the input is left as it is)."""
    merged = copy.deepcopy(clip)
    for name, module in list(merged.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge(adapter_names=[PEFT_ADAPTER])
            parent, _, child = name.rpartition(".")
            setattr(merged.get_submodule(parent), child, module.get_base_layer())
    return merged


class CLIPLoRAModel(PromptCLIPPreTrainedModel):
    """CLIP-LoRA: `q, k, v` (and optionally `o`) projections of the chosen layers carry `W x + (alpha / sqrt(r))
    B A dropout(x)`, put there by `peft.inject_adapter_in_model`; classes are compared with the text features
    of the template `"a photo of a {}."` through the (tuned) text tower.

    Trainable: the `lora_A` `(r, D)` and `lora_B` `(D, r)` weights inside CLIP's attention modules (saved as the
    adapter, `is_adapter_clip_key`); the rest of CLIP stays frozen. The text features are computed with the
    shared exact text engine (the template's words before the name as a shared prefix, EOS truncation), with
    autograd only while the text LoRA trains; the image tower runs under `inference_mode` unless its LoRA
    trains. `save_pretrained` also writes the LoRA as a stock PEFT adapter in `peft/`; `merge_and_unload()`
    gives a plain `CLIPModel` with the LoRA folded in.

    Example:
        ```python
        from hf_prompt_clip import CLIPLoRAModel
        model = CLIPLoRAModel.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"])   # r = 2, q k v, both
        loss = model(pixel_values, labels=labels).loss
        model.save_pretrained("clip-lora-pets")      # also clip-lora-pets/peft/: PeftModel.from_pretrained
        model.save_merged("clip-pets-merged")        # a plain CLIPModel folder for the zero-shot pipeline
        ```
    """

    config_class = CLIPLoRAConfig

    def __init__(self, config: CLIPLoRAConfig, clip_model=None, tokenizer=None, image_processor=None):
        super().__init__(config, clip_model, tokenizer, image_processor)
        inject_adapter_in_model(lora_config(config, self.clip), self.clip, adapter_name=PEFT_ADAPTER)
        for module in self.clip.modules():  # adapter tensors in float32, whatever CLIP's dtype
            if isinstance(module, LoraLayer):
                module.lora_A.float()
                module.lora_B.float()
        self.template_prompts = TemplatePrompts()

    # ------------------------------------------------------------------ the adapter inside CLIP

    def is_adapter_clip_key(self, key: str) -> bool:
        """The LoRA weights `peft` put in CLIP's layers (`...q_proj.lora_A.default.weight`)."""
        return ".lora_A." in key or ".lora_B." in key

    def lora_parameters(self, tower: str) -> list[torch.Tensor]:
        """The LoRA weights inside `"text"` or `"vision"` tower (empty where it takes none)."""
        module = getattr(self.clip, f"{tower}_model")
        return [p for n, p in module.named_parameters() if ".lora_A." in n or ".lora_B." in n]

    # ------------------------------------------------------------------ features

    def _build_class_prompts(self, texts: list[str]) -> None:
        self.template_prompts.build(texts)

    def class_text_features(self) -> torch.Tensor:
        """Normalised text features `(K, E)` of the template for the current classes, through the text LoRA
        (with autograd while it trains, else cached while its weights and the classes are unchanged)."""
        tuned = self.lora_parameters("text")
        if not tuned:
            return self.template_prompts.text_features(self, self.config.templates)
        return self.template_prompts.tuned_text_features(self, self.config.templates, tuned)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image features `(B, E)` through the image LoRA: with autograd while it trains, else as a frozen
        tower's (under `inference_mode`)."""
        if self.training and torch.is_grad_enabled() and self.lora_parameters("vision"):
            return self.image_output(encode_image_tokens(self.clip, pixel_values).pooled)
        return super().encode_images(pixel_values)

    # ------------------------------------------------------------------ PEFT adapter and merge

    def peft_config(self) -> LoraConfig:
        """The `LoraConfig` a stock `PeftModel` loads this LoRA with, naming the base model and revision."""
        return lora_config(
            self.config,
            self.clip,
            base_model_name_or_path=self.config.base_model_name_or_path,
            revision=self.config.base_model_revision,
        )

    def save_companion_files(self, save_directory: str | os.PathLike) -> None:
        """The LoRA as a stock PEFT adapter in `<folder>/peft/` (`adapter_config.json`,
        `adapter_model.safetensors`): `PeftModel.from_pretrained(CLIPModel.from_pretrained(base), folder,
        subfolder="peft")` loads it with no package. (In the folder's root an `adapter_config.json` would make
        transformers' Auto classes load a Hub repository as the base CLIP plus a PEFT adapter, bypassing the
        adapter's own loader.)"""
        folder = os.path.join(save_directory, PEFT_FOLDER)
        os.makedirs(folder, exist_ok=True)
        self.peft_config().save_pretrained(folder)
        state = get_peft_model_state_dict(self.clip, adapter_name=PEFT_ADAPTER)
        # PeftModel.save_pretrained's keys: the wrapped model sits at `base_model.model`
        tensors = {f"base_model.model.{key}": value.detach().contiguous() for key, value in state.items()}
        save_file(tensors, os.path.join(folder, "adapter_model.safetensors"), metadata={"format": "pt"})

    @classmethod
    def card_usage_notes(cls, config: CLIPLoRAConfig, repo_id: str) -> str | None:
        """The card's other ways to load the LoRA: stock PEFT (`peft/`) and a merged plain `CLIPModel`."""
        base = config.base_model_name_or_path or "openai/clip-vit-base-patch16"
        return f"""The same LoRA is saved as a stock **PEFT adapter** in `{PEFT_FOLDER}/` (`adapter_config.json` names the base
model and its revision), which loads without this package:

```python
from peft import PeftModel
from transformers import CLIPModel

clip = PeftModel.from_pretrained(CLIPModel.from_pretrained("{base}"), "{repo_id}", subfolder="{PEFT_FOLDER}")
```

It also **merges** into a plain `CLIPModel` (the LoRA folded into the weights: a plain CLIP's inference cost):
`hf-prompt-clip merge {repo_id} merged/` (or `model.save_merged("merged/")`) writes the model, its processors
and `classes.json` (class names and template) for `pipeline("zero-shot-image-classification", model="merged/")`
with stock transformers."""

    @property
    def merge_problem(self) -> str | None:
        """None: the LoRA is a change of CLIP's own weights, so it folds into a plain `CLIPModel`."""
        return None

    def merge_and_unload(self) -> CLIPModel:
        """A plain `CLIPModel` with the LoRA folded into the projections' weights (this model unchanged): its
        image and text features are this model's (in evaluation), at a plain CLIP's cost. Its config records
        the classes (`id2label`) and the template (`prompt_template`); `save_merged` (inherited) writes it as a folder with `classes.json`."""
        merged = merge_lora(self.clip)
        merged.config.id2label = dict(enumerate(self.class_names))
        merged.config.label2id = {name: index for index, name in enumerate(self.class_names)}
        merged.config.prompt_template = self.config.templates[0]
        return merged.eval()
