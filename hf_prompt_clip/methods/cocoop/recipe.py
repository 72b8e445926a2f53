"""CoCoOp's training recipe as its authors published it (`MethodInfo.recipe`, what `--recipe paper` applies).

Room: `methods/`.

Read from KaiyangZhou/CoOp@ff61507 (COCOOP.md, configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml,
scripts/cocoop/base2new_train.sh and xd_train.sh, trainers/cocoop.py) and KaiyangZhou/Dassl.pytorch@c61a1b5
(dassl/config/defaults.py, dassl/data/data_manager.py). Every table of the paper (base-to-new, cross-dataset
and domain generalisation from 16-shot ImageNet) uses the one config: 10 epochs, batch 1, SGD 0.002, 4 context
vectors from "a photo of a".
"""

from ...core.recipes import Recipe, RecipeEntry, dassl_defaults

_COOP = "KaiyangZhou/CoOp"

RECIPE = Recipe(
    "CoCoOp (KaiyangZhou/CoOp)",
    (
        *dassl_defaults(),
        RecipeEntry(
            f"{_COOP} configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml",
            training={
                "epochs": 10,
                "batch_size": 1,
                "learning_rate": 0.002,
                "optimizer": "sgd",
                "lr_schedule": "reference",
                "warmup_epochs": 1,
                "warmup_lr": 1e-5,
            },
            options={"n_ctx": 4, "ctx_init": "a photo of a"},
            note="the config of scripts/cocoop/base2new_train.sh and xd_train.sh (COCOOP.md)",
        ),
        RecipeEntry(
            f"{_COOP} trainers/cocoop.py",
            options={"meta_net_reduction": 16},
            note="Meta-Net: Linear(vis_dim, vis_dim // 16) -> ReLU -> Linear(vis_dim // 16, ctx_dim)",
        ),
    ),
    protocols={"base2new": (16,), "cross_dataset": (16,), "domain_generalization": (16,)},
    not_exact=(
        "The reference trains in fp16 (TRAINER.COCOOP.PREC 'fp16' in the config: CLIP cast to half); runs here "
        "are fp32 or bf16 autocast.",
    ),
)
