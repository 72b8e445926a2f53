"""MaPLe's training recipe (`RECIPE`): its authors' configs, scripts and Dassl's defaults.

Room: `methods/`.

Read from `muzairkhattak/multimodal-prompt-learning@69bce21` (`configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml`,
`configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets.yaml`, `scripts/maple/base2new_train_maple.sh`,
`scripts/maple/xd_train_maple.sh`, `docs/RUN.md`) and `KaiyangZhou/Dassl.pytorch@c61a1b5`
(`dassl/config/defaults.py`, `dassl/data/data_manager.py`). Base-to-new uses the default config; cross-dataset
transfer and domain generalisation share one ImageNet model (16 shots, all classes) trained with the cross-dataset
config (depth 3, 2 epochs, lr 0.0026). The repository has no few-shot setting.
"""

from ...core.recipes import Recipe, RecipeEntry, dassl_defaults

_MPL = "muzairkhattak/multimodal-prompt-learning"

RECIPE = Recipe(
    "MaPLe (muzairkhattak/multimodal-prompt-learning)",
    (
        RecipeEntry(
            f"{_MPL} configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml",
            training={
                "epochs": 5,
                "batch_size": 4,
                "learning_rate": 0.0035,
                "optimizer": "sgd",
                "lr_schedule": "reference",
                "warmup_epochs": 1,
                "warmup_lr": 1e-5,
            },
            options={"n_ctx": 2, "ctx_init": "a photo of a", "text_depth": 9},
            note="the default config (docs/RUN.md); base2new_train_maple.sh trains it on the base classes.",
        ),
        RecipeEntry(
            f"{_MPL} configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets.yaml",
            protocols=("cross_dataset", "domain_generalization"),
            training={"epochs": 2, "learning_rate": 0.0026},
            options={"text_depth": 3},
            note="xd_train_maple.sh: 16 shots of all ImageNet classes; the same model is tested on the other "
            "datasets and on the ImageNet variants.",
        ),
        *dassl_defaults(),
    ),
    protocols={"base2new": (16,), "cross_dataset": (16,), "domain_generalization": (16,)},
    not_exact=(
        "PREC fp16 in the reference: CLIP's weights, the shared text context and the first projection are fp16 "
        "(trained by SGD in fp16) and the deep prompts are rounded to fp16 at use; runs here are fp32 or bf16 "
        "autocast.",
        "muzairkhattak/PromptSRC's copy of this config says 2 epochs (its `configs/trainers/MaPLe/"
        "vit_b16_c2_ep5_batch4_2ctx.yaml`) while its test script loads epoch 5; the recipe follows MaPLe's own "
        "repository (5 epochs).",
    ),
)
