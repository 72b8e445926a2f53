"""PLOT's and PLOT++'s training recipes as their authors published them (`MethodInfo.recipe`, what
`--recipe paper` applies).

Room: `methods/`.

Read from CHENGY12/PLOT@728539f and KaiyangZhou/Dassl.pytorch@c61a1b5 (dassl/config/defaults.py,
dassl/data/data_manager.py; both PLOT folders install upstream Dassl).

PLOT (`plot-coop/`: configs/trainers/PLOT/rn50.yaml, train.py, scripts/main.sh, trainers/plot.py): SGD 0.002,
batch 128 (32 on Flowers, Aircraft and Cars, train.py), 16 context tokens per prompt, N=4 prompts, random
contexts; train.py overrides the config's 50 epochs: 50 / 100 / 100 / 200 / 200 for 1 / 2 / 4 / 8 / 16 shots and
50 on ImageNet, where the model also adds the global logits. main.sh runs every shot count with these.

PLOT++ (`plot-pp/`: configs/trainers/PLOTPP/vit.yaml, train.py, scripts/main_visiononly.sh and main_joint.sh,
trainers/plotpp.py): two runs of the same config, stage `visual` (MODEL_UPD vision, TRADE_OFF True) then stage
`joint` (MODEL_UPD joint, TRADE_OFF False), each SGD 0.002, batch 32, and the epochs of train.py's shot rule
(each stage trains `epochs`); N=4 text contexts of 4 tokens from the benchmark's phrases
(`benchmark_defaults`), M=4 visual prompt sets (the scripts' argument; the README runs 4) of 2 tokens.
"""

from ...core.recipes import Recipe, RecipeEntry, dassl_defaults

_PLOT = "CHENGY12/PLOT"
_SMALL = ("oxford_flowers", "fgvc_aircraft", "stanford_cars")
_SINKHORN = {"sinkhorn_eps": 0.1, "sinkhorn_max_iter": 100, "sinkhorn_threshold": 0.01}
_WARMUP = {"optimizer": "sgd", "lr_schedule": "reference", "warmup_epochs": 1, "warmup_lr": 1e-5}


def _epochs(folder: str) -> tuple[RecipeEntry, ...]:
    """train.py's rule (both folders): 50 at 1 shot, 100 at 2 and 4, 200 otherwise, 50 on ImageNet; batch 32 on
    the small sets."""
    source = f"{_PLOT} {folder}/train.py"
    return (
        RecipeEntry(source, training={"epochs": 200}, note="setup_cfg: 200 epochs unless 1, 2 or 4 shots"),
        RecipeEntry(source, shots=(1,), training={"epochs": 50}),
        RecipeEntry(source, shots=(2, 4), training={"epochs": 100}),
        RecipeEntry(source, datasets=("imagenet",), training={"epochs": 50}, note="50 epochs on ImageNet"),
        RecipeEntry(
            source,
            datasets=_SMALL,
            training={"batch_size": 32},
            note="batch 32 on OxfordFlowers, FGVCAircraft, StanfordCars",
        ),
    )


RECIPE = Recipe(
    "PLOT (CHENGY12/PLOT plot-coop)",
    (
        *dassl_defaults(),
        RecipeEntry(
            f"{_PLOT} plot-coop/configs/trainers/PLOT/rn50.yaml",
            training={"batch_size": 128, "learning_rate": 0.002, **_WARMUP},
            note="MAX_EPOCH 50 here is overridden by train.py",
        ),
        *_epochs("plot-coop"),
        RecipeEntry(
            f"{_PLOT} plot-coop/scripts/main.sh",
            options={"n_ctx": 16, "class_token_position": "end", "n_prompts": 4, "ctx_inits": None},
            note="NCTX=16, CTP=end, CSC=False, N=$2 (the README runs 4); CTX_INIT '' (random contexts)",
        ),
        RecipeEntry(
            f"{_PLOT} plot-coop/trainers/plot.py",
            options={"local_features": "patch", **_SINKHORN},
            note="eps 0.1, max_iter 100, thresh 1e-2",
        ),
        RecipeEntry(
            f"{_PLOT} plot-coop/trainers/plot.py",
            datasets=("imagenet",),
            options={"add_global_logits": True},
            note="the global logits are added to the transport logits on ImageNet",
        ),
    ),
    protocols={"few_shot": (1, 2, 4, 8, 16)},
    not_exact=(
        "The paper's PLOT runs are ResNet-50 (rn50.yaml: attention-pool local features); the package's CLIP is "
        "ViT-B/16, whose patch tokens are the local features here.",
        "The reference trains in fp16 (TRAINER.PLOT.PREC 'fp16'); runs here are fp32 or bf16 autocast.",
    ),
)

PLOTPP_RECIPE = Recipe(
    "PLOT++ (CHENGY12/PLOT plot-pp)",
    (
        *dassl_defaults(),
        RecipeEntry(
            f"{_PLOT} plot-pp/configs/trainers/PLOTPP/vit.yaml",
            training={"batch_size": 32, "learning_rate": 0.002, **_WARMUP},
            note="MAX_EPOCH 50 here is overridden by train.py; both stages run this config",
        ),
        *_epochs("plot-pp"),
        RecipeEntry(
            f"{_PLOT} plot-pp/scripts/main_joint.sh",
            options={
                "n_prompts": 4,
                "n_ctx": 4,
                "class_token_position": "end",
                "local_features": "visual_prompts",
                "n_visual_prompt_sets": 4,
                "n_visual_prompt_tokens": 2,
                "add_global_logits": False,
            },
            note="N=4, NCTX=4, CTP=end, M=$2 (the README runs 4), NCTX_V=2, CTX_INIT True; TRADE_OFF False "
            "in the joint stage (main_visiononly.sh: TRADE_OFF True, the model's own `visual` stage)",
        ),
        RecipeEntry(
            f"{_PLOT} plot-pp/trainers/plotpp.py",
            options=_SINKHORN,
            note="eps 0.1, max_iter 100, thresh 1e-2",
        ),
    ),
    protocols={"few_shot": (1, 2, 4, 8, 16)},
    not_exact=(
        "The authors train stage 1 once (main_visiononly.sh: seed 1) and start every seed's stage 2 from it "
        "(main_joint.sh: seeds 1-3); a run here trains both stages with its own seed.",
        "The reference trains in fp16 (TRAINER.PLOTPP.PREC 'fp16'); runs here are fp32 or bf16 autocast.",
        "The reference cuts or pads every phrase to the word count of the first one; each context here is as "
        "long as its own phrase (docs/methods.md).",
        "The README names the stage-1 checkpoint 'model.pth.tar-50' whatever the shots; the recipe follows "
        "train.py's 50 / 100 / 200 epochs by shots.",
    ),
)
