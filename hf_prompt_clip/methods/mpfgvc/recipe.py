"""MP-FGVC's training recipe as far as its paper states it (`MethodInfo.recipe`, what `--recipe paper` applies).

Room: `methods/`.

MP-FGVC (Jiang et al., AAAI 2024) has no public code: the source is the paper, as docs/mpfgvc.md records it.
It trains on the full training sets (`shots=None`) of CUB-200-2011, NABirds and Stanford Dogs with an
ImageNet-21k ViT-B/16 image encoder, SsVP keeping 12 of the 196 patches, VLFM's translation layer with
expansion 4, and temperature 0.07 in stage 1's contrastive loss. docs/mpfgvc.md records no epochs, batch size,
optimiser or learning rate from the paper ("the paper gives no per-stage schedule"), so the recipe sets no
training setting: the plain defaults of `TrainingConfig` apply.
"""

from ...core.recipes import Recipe, RecipeEntry

_PAPER = "the paper (Jiang et al., AAAI 2024; no public code) as docs/mpfgvc.md records it"

RECIPE = Recipe(
    "MP-FGVC (the paper; no public code)",
    (
        RecipeEntry(
            _PAPER,
            options={
                "fusion_expansion": 4,
                "contrastive_temperature": 0.07,
                "image_tower": "google/vit-base-patch16-224-in21k",
            },
            note="VLFM expansion 4, tau 0.07, the ImageNet-21k ViT-B/16 image encoder (its weights come from the "
            "Hub); SsVP's k=12 of 196 patches is the config's default, left unset so that `ssvp_fraction` given "
            "alone is not refused as a second count",
        ),
    ),
    protocols={"few_shot": (None,)},
    not_exact=(
        "The paper's training schedule (epochs, batch size, optimiser, learning rates per stage) is not recorded "
        "here; the plain TrainingConfig defaults apply and both stages train `epochs` at the same rate.",
        "Every choice the paper leaves open (docs/mpfgvc.md) is this package's reading, not the authors' code.",
    ),
)
