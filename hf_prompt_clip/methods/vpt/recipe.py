"""VPT-deep's training recipe as the MaPLe authors run it (`RECIPE`): their VPT config, scripts and Dassl's defaults.

Room: `methods/`.

Read from `muzairkhattak/multimodal-prompt-learning@69bce21` (`configs/trainers/VPT/vit_b16_c2_ep5_batch4_4.yaml`,
`scripts/vpt/base2new_train_vpt.sh`, `scripts/vpt/xd_train_vpt.sh`, `trainers/vpt.py`) and
`KaiyangZhou/Dassl.pytorch@c61a1b5` (`dassl/config/defaults.py`, `dassl/data/data_manager.py`). One config serves
every protocol: base-to-new trains on the base classes, the cross-dataset / domain-generalisation script trains the
same config on 16 shots of all ImageNet classes. The repository has no few-shot setting for VPT.
"""

from ...core.recipes import Recipe, RecipeEntry, dassl_defaults

_MPL = "muzairkhattak/multimodal-prompt-learning"

RECIPE = Recipe(
    "VPT-deep (muzairkhattak/multimodal-prompt-learning)",
    (
        RecipeEntry(
            f"{_MPL} configs/trainers/VPT/vit_b16_c2_ep5_batch4_4.yaml",
            training={
                "epochs": 5,
                "batch_size": 4,
                "learning_rate": 0.0025,
                "optimizer": "sgd",
                "lr_schedule": "reference",
                "warmup_epochs": 1,
                "warmup_lr": 1e-5,
            },
            options={"n_ctx_vision": 8, "vision_depth": 12},
            note="8 tokens although the file name says 4; the same config for base-to-new and xd_train_vpt.sh.",
        ),
        RecipeEntry(
            f"{_MPL} trainers/vpt.py",
            options={"templates": ["a photo of a {}."]},
            note="the frozen text side is 'a photo of a {}.' for every dataset (CTX_INIT is never read).",
        ),
        *dassl_defaults(),
    ),
    protocols={"base2new": (16,), "cross_dataset": (16,), "domain_generalization": (16,)},
    not_exact=(
        "The authors' VPT runs CLIP in float32 (`vpt.py` calls `.float()`) but rounds the visual prompts to "
        "fp16 before every concatenation; runs here keep the prompts in the tower's dtype (fp32, or bf16 autocast).",
        "The cross-dataset / domain-generalisation test script loads epoch 2 (`scripts/vpt/xd_test_vpt.sh`) of a "
        "5-epoch config that Dassl saves only at its last epoch; the recipe trains the config's 5 epochs.",
    ),
)
