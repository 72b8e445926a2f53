"""Room: modeling. The class list of a model and the text features cached for it: the `ClassPrompts` half
of `PromptCLIPPreTrainedModel`.

The class list lives in the config (`class_names`, `prompt_names`, `id2label`); each change bumps
`class_version`, which rebuilds the method's frozen prompt parts on next use (`_build_class_prompts`, the
method's hook) and keys the text features cached while no gradient is recorded (`cached_text`,
`context_text_features`). A mixin of `PromptCLIPPreTrainedModel`, before transformers' `PreTrainedModel`;
it reads of the model: `config`, `tokenizer`, `training` and `clip.text_projection`.

Example:
    ```python
    model.set_class_names(["cat", "dog"])            # rebuilds prompts, keeps the learned adapter
    with model.using_class_names(["car", "plane"]):  # classify new classes, then restore
        logits = model.classify(pixel_values)
    ```
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from ..core.class_names import validate_class_names
from .text import prompt_class_name

__all__ = ["ClassPrompts"]


class ClassPrompts:
    """The class list and its cached text features (see the module docstring)."""

    def _init_class_prompts(self) -> None:
        self._class_version = 0
        self._prompts_built_for = -1
        self._text_cache: dict[str, tuple[Any, torch.Tensor]] = {}

    @property
    def class_version(self) -> int:
        """A counter bumped at every change of the class list: part of the key of cached class texts."""
        return self._class_version

    @property
    def class_names(self) -> list[str]:
        self._check_has_classes()
        return list(self.config.class_names)

    def _check_has_classes(self) -> None:
        if not self.config.class_names:
            raise ValueError(f"{type(self).__name__} has no classes yet: call set_class_names([...]) first.")

    def set_class_names(self, class_names: list[str], prompt_names: list[str] | None = None) -> None:
        """Use a new class list: rebuilds the frozen prompt parts and keeps the learned adapter.

        On failure (e.g. a name too long for the text encoder) the model keeps its previous list.

        Args:
            class_names: unique labels, in label order.
            prompt_names: the text of each class in prompts, if it differs from its label.
        """
        names = validate_class_names(class_names)
        self._check_class_names(names)
        previous = self._class_state()
        try:
            self.config.set_class_names(names, prompt_names)
            self._class_list_changed()
            if self.tokenizer is not None:
                self._ensure_class_prompts()
        except Exception:
            self._restore_class_state(previous)
            raise

    @contextlib.contextmanager
    def using_class_names(
        self, class_names: list[str], prompt_names: list[str] | None = None
    ) -> Iterator[None]:
        """Temporarily classify among `class_names` (e.g. new classes), then restore the old list."""
        previous = self._class_state()
        self.set_class_names(class_names, prompt_names)
        try:
            yield
        finally:
            self._restore_class_state(previous)

    def _class_state(self) -> tuple[Any, ...]:
        """The config fields that make up the class list (saved to restore it later)."""
        config = self.config
        return config.class_names, config.prompt_names, config.id2label, config.label2id

    def _restore_class_state(self, state: tuple[Any, ...]) -> None:
        config = self.config
        config.class_names, config.prompt_names, config.id2label, config.label2id = state
        self._class_list_changed()

    def _class_list_changed(self) -> None:
        """Invalidate the class prompts (rebuilt on next use) and the cached text features."""
        self._class_version += 1
        self._text_cache.clear()

    def _check_class_names(self, class_names: list[str]) -> None:
        """Hook: refuse class lists the adapter cannot serve (e.g. class-specific context)."""

    def _ensure_class_prompts(self) -> None:
        if self._prompts_built_for != self._class_version:
            self._check_has_classes()
            if self.tokenizer is None:
                raise ValueError(
                    f"{type(self).__name__} needs the base model's tokenizer to turn class names into "
                    "prompts: set model.tokenizer = AutoTokenizer.from_pretrained(<base model>) or "
                    "build the model with from_clip()/from_pretrained()."
                )
            self._build_class_prompts([prompt_class_name(n) for n in self.config.class_prompt_names])
            self._prompts_built_for = self._class_version

    def _build_class_prompts(self, texts: list[str]) -> None:
        """Hook: rebuild the frozen token parts of the class prompts (texts are in prompt form)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ cached text features

    def forget_text_features(self) -> None:
        """Drop the cached text features (the adapter tensors they were computed from changed)."""
        self._text_cache.clear()

    def cached_text(self, name: str, key: Any, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """`compute()` cached under `name` while `key` is unchanged and no gradient is recorded.

        The key always includes the text tower's device and dtype, so moving or casting the model
        recomputes the features.
        """
        text_weight = self.clip.text_projection.weight
        key = (text_weight.device, text_weight.dtype, key)
        if torch.is_grad_enabled():
            self._text_cache.pop(name, None)
            return compute()
        hit = self._text_cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = compute()
        self._text_cache[name] = (key, value)
        return value

    def context_text_features(
        self, name: str, context: torch.Tensor | Sequence[torch.Tensor], compute: Callable[[], torch.Tensor]
    ) -> torch.Tensor:
        """`compute()`, text features of prompts holding the learned `context` (one tensor, or several: deep
        prompts' per-layer tokens): with autograd while the context learns (training mode, gradients on, a
        context tensor requiring grad), else once per class list and context value (cached under `name`,
        without autograd: in eval mode, under `no_grad`, or while only other parameters train), so evaluation
        forgetting `torch.no_grad()` still runs at plain-CLIP speed."""
        tensors = (context,) if isinstance(context, torch.Tensor) else tuple(context)
        if self.training and torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return compute()
        key = (self._class_version, self.config.fast, *((t._version, t.data_ptr()) for t in tensors))
        with torch.no_grad():
            return self.cached_text(name, key, compute)
