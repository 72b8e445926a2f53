"""CoOp's training recipe as its authors published it (`MethodInfo.recipe`, what `--recipe paper` applies).

Room: `methods/`.

Read from KaiyangZhou/CoOp@ff61507 (COOP.md, COCOOP.md, configs/trainers/CoOp/vit_b16*.yaml, train.py,
scripts/coop/main.sh, scripts/cocoop/base2new_train.sh and xd_train.sh) and KaiyangZhou/Dassl.pytorch@c61a1b5
(dassl/config/defaults.py, dassl/data/data_manager.py). Few-shot: the IJCV paper's M=16, class token at the
end, shared random context; 50 / 100 / 100 / 200 / 200 epochs for 1 / 2 / 4 / 8 / 16 shots and 50 on ImageNet
whatever the shots (COOP.md). Base-to-new, cross-dataset and domain generalisation: the CoOp baseline of the
CoCoOp paper, whose scripts name `vit_b16_ctxv1` (base-to-new; `vit_b16_ep50_ctxv1` on ImageNet) and
`vit_b16_ep50_ctxv1` (trained on 16-shot ImageNet for the transfer tables): context from "a photo of a", so
4 context vectors (CoOp's code sets M to the words of `CTX_INIT`). `paper.py` holds that paper's numbers.
"""

from ...core.recipes import Recipe, RecipeEntry, dassl_defaults

_COOP = "KaiyangZhou/CoOp"
_SCHEDULE = {
    "batch_size": 32,
    "learning_rate": 0.002,
    "optimizer": "sgd",
    "lr_schedule": "reference",
    "warmup_epochs": 1,
    "warmup_lr": 1e-5,
}
_CTXV1 = {"ctx_init": "a photo of a", "n_ctx": 4}

RECIPE = Recipe(
    "CoOp (KaiyangZhou/CoOp)",
    (
        *dassl_defaults(),
        RecipeEntry(f"{_COOP} configs/trainers/CoOp/vit_b16.yaml", training={**_SCHEDULE, "epochs": 200}),
        RecipeEntry(
            f"{_COOP} train.py",
            options={"class_token_position": "end", "class_specific_context": False},
            note="extend_cfg: CLASS_TOKEN_POSITION 'end', CSC False (main.sh passes end / False for the paper's M=16 runs)",
        ),
        RecipeEntry(
            f"{_COOP} scripts/coop/main.sh",
            protocols=("few_shot",),
            options={"n_ctx": 16, "ctx_init": None},
            note="CLIP + CoOp (M=16, end): 16 context vectors, random init N(0, 0.02^2) (COOP.md)",
        ),
        RecipeEntry(
            f"{_COOP} configs/trainers/CoOp/vit_b16_ep50.yaml",
            protocols=("few_shot",),
            shots=(1,),
            training={"epochs": 50},
        ),
        RecipeEntry(
            f"{_COOP} configs/trainers/CoOp/vit_b16_ep100.yaml",
            protocols=("few_shot",),
            shots=(2, 4),
            training={"epochs": 100},
        ),
        RecipeEntry(
            f"{_COOP} configs/trainers/CoOp/vit_b16_ep50.yaml",
            protocols=("few_shot",),
            datasets=("imagenet",),
            training={"epochs": 50},
            note="COOP.md: for ImageNet, *_ep50.yaml for all settings",
        ),
        RecipeEntry(
            f"{_COOP} configs/trainers/CoOp/vit_b16_ctxv1.yaml",
            protocols=("base2new",),
            training={"epochs": 200},
            options=_CTXV1,
            note="scripts/cocoop/base2new_train.sh: CFG=vit_b16_ctxv1 when TRAINER=CoOp",
        ),
        RecipeEntry(
            f"{_COOP} configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml",
            protocols=("base2new",),
            datasets=("imagenet",),
            training={"epochs": 50},
            options=_CTXV1,
            note="scripts/cocoop/base2new_train.sh: CFG=vit_b16_ep50_ctxv1 when TRAINER=CoOp and DATASET=imagenet",
        ),
        RecipeEntry(
            f"{_COOP} configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml",
            protocols=("cross_dataset", "domain_generalization"),
            training={"epochs": 50},
            options=_CTXV1,
            note="scripts/cocoop/xd_train.sh: 16-shot ImageNet, CFG=vit_b16_ep50_ctxv1 when TRAINER=CoOp",
        ),
    ),
    protocols={
        "few_shot": (1, 2, 4, 8, 16),
        "base2new": (16,),
        "cross_dataset": (16,),
        "domain_generalization": (16,),
    },
    not_exact=(
        "The reference trains in fp16 (TRAINER.COOP.PREC 'fp16': CLIP cast to half, the context learned in half); "
        "runs here are fp32 or bf16 autocast.",
        "The IJCV paper's few-shot curves are ResNet-50 runs (rn50*.yaml, the same schedule); the package's CLIP is "
        "ViT-B/16 (vit_b16*.yaml).",
        "The IJCV paper's own domain-generalisation runs used M=16 random contexts (vit_b16_ep50); this recipe "
        "follows the CoCoOp paper's CoOp baseline (vit_b16_ep50_ctxv1), whose numbers paper.py holds.",
    ),
)
