"""The prompt text path: token layouts with slots for learned vectors, and the frozen text encoder.

Room: `modeling/`.

`CLIPTextModel.forward` only takes token ids, so prompt learners run the text tower themselves:
token embeddings (with learned context vectors spliced in) + positions -> causal encoder ->
final LayerNorm at the end-of-text position -> text projection.

`encode_text_embeddings` is the straightforward reference path built from transformers' own
modules (all positions, one encoder call). Faster paths must reproduce it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from transformers import CLIPModel, PreTrainedTokenizerBase
from transformers.masking_utils import create_causal_mask

ClassTokenPosition = Literal["end", "middle", "front"]
CLASS_TOKEN_POSITIONS: tuple[str, ...] = ("end", "middle", "front")


def prompt_class_name(name: str) -> str:
    """The text a class name contributes to a prompt (CoOp convention: underscores become spaces)."""
    return name.replace("_", " ")


def fill_template(template: str, class_name: str) -> str:
    """`template.format(name)` with the prompt form of the class name, with a clear error on bad templates."""
    if template.count("{}") != 1:
        raise ValueError(
            f"Template {template!r} must contain exactly one '{{}}' where the class name goes, "
            f"e.g. 'a photo of a {{}}.'."
        )
    return template.replace("{}", prompt_class_name(class_name))


def _token_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class LayoutLengths:
    """The host-side (Python) facts about a `PromptLayout` that the fast text engine needs on every call.

    Reading them off the layout's tensors on a GPU waits for the device (a host synchronisation),
    so they are computed once, when the layout is built on the CPU, and travel with it.

    Attributes:
        eos_positions: the end-of-text position of each of the K prompts.
        shared_prefix_length: leading positions identical in every prompt (`PromptLayout.shared_prefix_length`).
        context_after_prefix: whether any context slot lies at or after `shared_prefix_length`
            (then the suffixes hold learned vectors too, e.g. the second half with `"middle"`).

    Example:
        >>> layout = build_prompt_layout(tokenizer, ["cat", "dog"], n_ctx=4)
        >>> layout.lengths.eos_positions, layout.lengths.shared_prefix_length
        ((7, 7), 5)
    """

    eos_positions: tuple[int, ...]
    shared_prefix_length: int
    context_after_prefix: bool

    @classmethod
    def of(
        cls, input_ids: torch.Tensor, context_index: torch.Tensor, eos_positions: torch.Tensor
    ) -> LayoutLengths:
        """Compute the facts from a layout's tensors `(K, L)`, `(K, L)`, `(K,)` (on a GPU: a few
        host synchronisations; call it once per layout)."""
        input_ids, context_index = input_ids.cpu(), context_index.cpu()
        eos = tuple(eos_positions.tolist())
        same = (input_ids == input_ids[:1]).all(0) & (context_index == context_index[:1]).all(0)
        differing = (~same).nonzero()
        length = int(differing[0]) if len(differing) else input_ids.shape[1]
        shared = min(length, min(eos))
        return cls(eos, shared, bool((context_index[:, shared:] >= 0).any()))


@dataclass
class PromptLayout:
    """K tokenised prompts in which some positions hold learned context vectors.

    Attributes:
        input_ids: `(K, L)` token ids; positions of context slots hold a placeholder id.
        context_index: `(K, L)` index of the context vector at each position, `-1` for frozen tokens.
        eos_positions: `(K,)` position of the end-of-text token, whose final state is the text feature.
        host: the same facts as Python values (`LayoutLengths`), or None to compute them on first
            use (`lengths`); `build_prompt_layout` fills it in, and `to` keeps it.
    """

    input_ids: torch.Tensor
    context_index: torch.Tensor
    eos_positions: torch.Tensor
    host: LayoutLengths | None = field(default=None, repr=False, compare=False)

    @property
    def num_prompts(self) -> int:
        return self.input_ids.shape[0]

    @property
    def lengths(self) -> LayoutLengths:
        """EOS positions, shared prefix length and whether context follows it, as Python values
        (computed from the tensors on first use if the layout was made without them)."""
        if self.host is None:
            self.host = LayoutLengths.of(self.input_ids, self.context_index, self.eos_positions)
        return self.host

    @property
    def shared_prefix_length(self) -> int:
        """Number of leading positions identical in every prompt (tokens and context slots),
        never including an end-of-text position: the part a shared-prefix cache encodes once."""
        return self.lengths.shared_prefix_length

    def to(self, device: torch.device | str) -> PromptLayout:
        return PromptLayout(
            self.input_ids.to(device),
            self.context_index.to(device),
            self.eos_positions.to(device),
            self.host,
        )


def _check_length(length: int, max_length: int, what: str, detail: str) -> None:
    if length > max_length:
        raise ValueError(
            f"The prompt for {what} needs {length} token positions ({detail}), but the text encoder "
            f"has only {max_length}. Shorten the text or use fewer context tokens (n_ctx)."
        )


def build_prompt_layout(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    n_ctx: int,
    position: ClassTokenPosition = "end",
    suffix: str = ".",
    max_length: int = 77,
    placeholder_id: int | None = None,
    context_ids: list[int] | None = None,
    fixed_ids: Sequence[int] = (),
) -> PromptLayout:
    """Token layouts for `[SOS] [context] text suffix [EOS]` prompts (CoOp's prompt structure).

    `texts` are the class names (already in prompt form). With `position="end"` a prompt reads
    `[SOS] v_1..v_M name suffix [EOS]`; `"middle"` puts the name after the first `M // 2` context
    vectors; `"front"` puts it before all of them. Tokens are those of the equivalent hand-written
    template: at the end the name and suffix are tokenised together (`"name."`); in the middle or
    front, where context follows the name, they are tokenised apart. (The reference code splits the
    joint tokenisation instead, which differs for names ending in punctuation.)

    Args:
        context_ids: token ids to show at the context slots (e.g. those of `ctx_init`); only used
            for readability of `input_ids`, never for the result.
        fixed_ids: token ids of fixed words between the context and the class name (`position="end"` only):
            the rest of `ctx_init` when only its first tokens are learned (the deep-prompt methods).
    """
    if position not in CLASS_TOKEN_POSITIONS:
        raise ValueError(f"class_token_position must be one of {CLASS_TOKEN_POSITIONS}, got {position!r}.")
    if n_ctx < 0:
        raise ValueError(f"n_ctx must be >= 0, got {n_ctx}.")
    if fixed_ids and position != "end":
        raise ValueError(
            f"Fixed words after the context go before a class name at the end; class_token_position={position!r} "
            "puts it elsewhere: use class_token_position='end', or learn all of ctx_init."
        )
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    placeholder = pad if placeholder_id is None else placeholder_id
    slot_ids = list(context_ids) if context_ids is not None else [placeholder] * n_ctx

    input_ids = torch.full((len(texts), max_length), pad, dtype=torch.long)
    context_index = torch.full((len(texts), max_length), -1, dtype=torch.long)
    eos_positions = torch.empty(len(texts), dtype=torch.long)
    for row, text in enumerate(texts):
        # (token id, context slot or -1) in reading order
        context = [(slot_ids[j], j) for j in range(n_ctx)]
        if position == "end":
            body = _token_ids(tokenizer, f"{text}{suffix}")
            sequence = context + [(token, -1) for token in [*fixed_ids, *body]]
        else:
            name = [(token, -1) for token in _token_ids(tokenizer, text)]
            tail = [(token, -1) for token in _token_ids(tokenizer, suffix)] if suffix else []
            body = name + tail
            half = n_ctx // 2 if position == "middle" else 0
            sequence = context[:half] + name + context[half:] + tail
        sequence = [(bos, -1), *sequence, (eos, -1)]
        _check_length(
            len(sequence),
            max_length,
            repr(text),
            f"start + {n_ctx} context + {len(fixed_ids) + len(body)} text tokens + end",
        )
        ids, slots = zip(*sequence)
        input_ids[row, : len(ids)] = torch.tensor(ids)
        context_index[row, : len(slots)] = torch.tensor(slots)
        eos_positions[row] = len(ids) - 1
    return PromptLayout(
        input_ids, context_index, eos_positions, LayoutLengths.of(input_ids, context_index, eos_positions)
    )


def tokenize_texts(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int = 77
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids `(N, max_length)` of plain texts (with start/end tokens) and their end-of-text positions."""
    layout = build_prompt_layout(tokenizer, texts, n_ctx=0, suffix="", max_length=max_length)
    return layout.input_ids, layout.eos_positions


def eos_positions_from_ids(input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """Position of the first end-of-text token in each row, as transformers' CLIP reads it."""
    is_eos = input_ids == eos_token_id
    if not bool(is_eos.any(dim=-1).all()):
        raise ValueError(
            f"Every text must contain the end-of-text token (id {eos_token_id}); tokenise with the "
            "base model's tokenizer and add_special_tokens=True."
        )
    return is_eos.int().argmax(dim=-1)


def assemble_prompt_embeddings(
    token_embeds: torch.Tensor,
    context_index: torch.Tensor,
    context: torch.Tensor,
    class_specific: bool = False,
) -> torch.Tensor:
    """Splice learned context vectors into frozen token embeddings.

    Args:
        token_embeds: `(K, L, D)` embeddings of the layout's token ids.
        context_index: `(K, L)` context slot per position, `-1` where the token is frozen.
        context: `(M, D)` shared by all prompts, `(K, M, D)` with `class_specific=True`, or
            `(*lead, M, D)` (e.g. one context per image) shared by all K prompts.

    Returns:
        `(K, L, D)`, or `(*lead, K, L, D)` for a context with leading dimensions.
    """
    is_context = (context_index >= 0).unsqueeze(-1)
    slots = context_index.clamp(min=0)
    if class_specific:
        gathered = context.gather(1, slots.unsqueeze(-1).expand(-1, -1, context.shape[-1]))
    else:
        gathered = context[..., slots, :]
    return torch.where(is_context, gathered.to(token_embeds.dtype), token_embeds)


def encode_text_embeddings(
    clip: CLIPModel,
    token_embeds: torch.Tensor,
    eos_positions: torch.Tensor,
    deep_context: torch.Tensor | None = None,
    context_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Text features `(N, E)` of prompts given as token embeddings `(N, L, D)` (reference path).

    Uses transformers' own CLIP text modules over all `L` positions with a causal mask, then
    reads the final state at `eos_positions` (`(N,)`), applies the final LayerNorm and the
    text projection. Equals `CLIPModel.get_text_features` when the embeddings are plain tokens.

    With deep text prompts `deep_context` `(J - 1, M, D)` (IVLP, MaPLe, PromptSRC), the encoder's
    layers run one by one, and before layer j (`1 <= j < J`) the hidden state at every position whose
    `context_index` `(N, L)` is a slot s >= 0 is replaced by `deep_context[j - 1, s]`.
    """
    text_model = clip.text_model
    dtype = text_model.embeddings.token_embedding.weight.dtype
    hidden = text_model.embeddings(inputs_embeds=token_embeds.to(dtype))
    # config, inputs_embeds, attention_mask, cache (named past_key_values before transformers 5.24)
    mask = create_causal_mask(text_model.config, hidden, None, None)
    if deep_context is None:
        hidden = text_model.encoder(
            inputs_embeds=hidden, attention_mask=mask, is_causal=True
        ).last_hidden_state
    else:
        if context_index is None:
            raise ValueError("deep_context needs context_index, the context slot of each position.")
        for index, layer in enumerate(text_model.encoder.layers):
            if 1 <= index <= deep_context.shape[0]:
                hidden = assemble_prompt_embeddings(hidden, context_index, deep_context[index - 1])
            hidden = layer(hidden, mask, is_causal=True)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    pooled = text_model.final_layer_norm(hidden[rows, eos_positions.to(hidden.device)])
    return clip.text_projection(pooled)


def embed_tokens(clip: CLIPModel, input_ids: torch.Tensor) -> torch.Tensor:
    """Frozen token embeddings `(..., L, D)` of `input_ids` `(..., L)`."""
    return clip.text_model.embeddings.token_embedding(input_ids)


def phrase_token_ids(tokenizer: PreTrainedTokenizerBase, phrase: str) -> list[int]:
    """The BPE token ids of `phrase` without start/end tokens (a context's initial words).

    Raises:
        ValueError: when the phrase has no tokens.
    """
    ids = tokenizer(phrase, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"The context phrase {phrase!r} contains no tokens; give words or leave it out.")
    return ids


@torch.no_grad()
def phrase_embeddings(clip: CLIPModel, ids: list[int]) -> torch.Tensor:
    """Token embeddings `(T, D)` of phrase token ids, in float32 on the text tower's device (to start a
    context from)."""
    device = clip.text_model.embeddings.token_embedding.weight.device
    return embed_tokens(clip, torch.tensor(ids, device=device)).float()


def random_context(shape: tuple[int, ...], std: float) -> torch.Tensor:
    """Normal(0, std) context vectors in float32, drawn on the CPU so that a seed gives the same values
    whatever the model's device."""
    return torch.nn.init.normal_(torch.empty(shape, dtype=torch.float32, device="cpu"), std=std)
