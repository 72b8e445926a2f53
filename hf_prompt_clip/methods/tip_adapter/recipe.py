"""Tip-Adapter's and Tip-Adapter-F's recipes as their authors published them, as data. Room: `methods/`.

Read from gaopengcuhk/Tip-Adapter@d0e2d6f.

`configs/<dataset>.yaml` sets, per dataset, the initial alpha and beta, the search ranges of beta and alpha
(`search_scale`; every dataset searches `search_step: [200, 20]` values), the cache's `augment_epoch: 10` views,
and Tip-Adapter-F's `lr: 0.001` and `train_epoch` (20; 100 on EuroSAT); the README says these values serve every
shot count. `main.py` (and `main_imagenet.py`) crop the training views with scale (0.5, 1), fine-tune with
`AdamW(lr, eps=1e-4)` (torch's weight decay 0.01) under a cosine schedule over `train_epoch x len(loader)` steps,
batches of 256. Both are fits (no optimiser of the trainer): only method options apply. The per-dataset values
are those of `settings.py`, which holds the same yaml files.
"""

from ...core.recipes import Recipe, RecipeEntry
from .settings import AUTHOR_SETTINGS

_REPO = "gaopengcuhk/Tip-Adapter"
#: benchmark key -> the authors' yaml file name (`fgvc` is FGVC-Aircraft).
_YAML = {key: "fgvc" if key == "fgvc_aircraft" else key for key in AUTHOR_SETTINGS}
_SHOTS = {"few_shot": (1, 2, 4, 8, 16)}
_NOT_EXACT = (
    "The authors' numbers are ResNet-50 CLIP's; the per-dataset alpha/beta ranges were tuned for it, and the "
    "package's CLIP is ViT-B/16.",
    "The reference runs CLIP in fp16 on a GPU; runs here are fp32 or bf16.",
    "On ImageNet the authors search alpha and beta on the test set (main_imagenet.py); runs here search on the "
    "benchmark's validation examples (for ImageNet, CoOp's split, which is also its test set).",
)


def _cache_entries() -> list[RecipeEntry]:
    """What Tip-Adapter and Tip-Adapter-F share: the cache and the search, everywhere and per dataset."""
    entries = [
        RecipeEntry(
            f"{_REPO} configs/*.yaml, main.py",
            options={
                "search": True,
                "search_steps": [200, 20],
                "augment_views": 10,
                "augment_crop_scale": [0.5, 1.0],
            },
            note="search_hp, search_step and augment_epoch of every yaml; main.py's RandomResizedCrop(0.5, 1).",
        )
    ]
    for key, (alpha, beta, scale, _) in AUTHOR_SETTINGS.items():
        entries.append(
            RecipeEntry(
                f"{_REPO} configs/{_YAML[key]}.yaml",
                options={"init_alpha": alpha, "init_beta": beta, "search_scale": list(scale)},
                datasets=(key,),
            )
        )
    return entries


RECIPE = Recipe(
    "Tip-Adapter (gaopengcuhk/Tip-Adapter)",
    tuple(_cache_entries()),
    protocols=_SHOTS,
    not_exact=_NOT_EXACT,
)


def _finetune_entries() -> list[RecipeEntry]:
    """Tip-Adapter-F's fine-tuning: everywhere, then the epochs per dataset."""
    entries = [
        RecipeEntry(
            f"{_REPO} configs/*.yaml, main.py",
            options={"finetune_lr": 0.001, "finetune_batch_size": 256, "finetune_weight_decay": 0.01},
            note="lr of every yaml; train_loader_F batch 256; AdamW(eps=1e-4) keeps torch's weight decay 0.01.",
        )
    ]
    for key, (_, _, _, epochs) in AUTHOR_SETTINGS.items():
        entries.append(
            RecipeEntry(
                f"{_REPO} configs/{_YAML[key]}.yaml", options={"finetune_epochs": epochs}, datasets=(key,)
            )
        )
    return entries


RECIPE_F = Recipe(
    "Tip-Adapter-F (gaopengcuhk/Tip-Adapter)",
    (*_cache_entries(), *_finetune_entries()),
    protocols=_SHOTS,
    not_exact=(
        *_NOT_EXACT,
        "The authors keep the fine-tuned keys of the epoch with the best test accuracy; runs here keep the last "
        "epoch's (keep_epoch='best_validation' chooses on validation instead).",
        "The authors draw a fresh augmented crop every fine-tuning epoch; runs here fine-tune on the cache's 10 "
        "augmented views, epoch e reading view e mod 10.",
    ),
)

__all__ = ["RECIPE", "RECIPE_F"]
