"""IVLP's training recipe as the MaPLe authors run it (`RECIPE`): their IVLP config, scripts and Dassl's defaults.

Room: `methods/`.

Read from `muzairkhattak/multimodal-prompt-learning@69bce21` (`configs/trainers/IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml`,
`scripts/independent-vlp/base2new_train_ivlp.sh`, `scripts/independent-vlp/xd_train_ivlp.sh`) and
`KaiyangZhou/Dassl.pytorch@c61a1b5` (`dassl/config/defaults.py`, `dassl/data/data_manager.py`). One config serves
every protocol: base-to-new trains on the base classes, the cross-dataset / domain-generalisation script trains the
same config on 16 shots of all ImageNet classes. The repository has no few-shot setting for IVLP.

Other configurations of the same method, not this recipe (give them as options and settings): PromptSRC's IVLP
baseline (`muzairkhattak/PromptSRC@bb95c77 configs/trainers/IVLP/vit_b16_c2_ep20_batch4_4+4ctx.yaml`: `n_ctx=4,
n_ctx_vision=4, text_depth=9, vision_depth=9`, 20 epochs, lr 0.0025) and deep language prompting
(`configs/trainers/IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only.yaml`: `n_ctx=4, text_depth=12, n_ctx_vision=0,
vision_depth=0`, lr 0.0025).
"""

from ...core.recipes import Recipe, RecipeEntry, dassl_defaults

_MPL = "muzairkhattak/multimodal-prompt-learning"

RECIPE = Recipe(
    "IVLP (muzairkhattak/multimodal-prompt-learning)",
    (
        RecipeEntry(
            f"{_MPL} configs/trainers/IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml",
            training={
                "epochs": 5,
                "batch_size": 4,
                "learning_rate": 0.0035,
                "optimizer": "sgd",
                "lr_schedule": "reference",
                "warmup_epochs": 1,
                "warmup_lr": 1e-5,
            },
            options={
                "n_ctx": 2,
                "n_ctx_vision": 2,
                "ctx_init": "a photo of a",
                "text_depth": 12,
                "vision_depth": 12,
            },
            note="the same config for base-to-new (base2new_train_ivlp.sh) and cross-dataset (xd_train_ivlp.sh).",
        ),
        *dassl_defaults(),
    ),
    protocols={"base2new": (16,), "cross_dataset": (16,), "domain_generalization": (16,)},
    not_exact=(
        "PREC fp16 in the reference: CLIP's weights and the text context are fp16 (trained by SGD in fp16) and "
        "the visual and deep prompts are rounded to fp16 at use; runs here are fp32 or bf16 autocast.",
        "The cross-dataset / domain-generalisation test script loads epoch 2 (`scripts/independent-vlp/"
        "xd_test_ivlp.sh`) of a 5-epoch config that Dassl saves only at its last epoch; the recipe trains the "
        "config's 5 epochs.",
    ),
)
