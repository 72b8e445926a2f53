"""CLIP-LoRA's training recipe as its authors published it, as data. Room: `methods/`.

Read from MaxZanella/CLIP-LoRA@358f0d7.

One setting for every dataset and shot count (the README: "fixed hyperparameters for every task and every number
of shots"): `run_utils.py`'s defaults (lr 2e-4, batch 32, `n_iters` 500; LoRA r 2, alpha 1, dropout 0.25 on q, k,
v of every layer of both towers) and `lora.py`'s optimiser: AdamW (weight decay 1e-2, betas (0.9, 0.999)) with
`CosineAnnealingLR(n_iters x shots, eta_min=1e-6)` stepped every iteration, no warm-up. `main.py` and
`datasets/utils.py` keep the last incomplete batch (`drop_last=False`).
"""

from ...core.recipes import PerShot, Recipe, RecipeEntry

RECIPE = Recipe(
    "CLIP-LoRA (MaxZanella/CLIP-LoRA)",
    (
        RecipeEntry(
            "MaxZanella/CLIP-LoRA run_utils.py, lora.py, main.py",
            training={
                "max_steps": PerShot(500),
                "batch_size": 32,
                "learning_rate": 2e-4,
                "optimizer": "adamw",
                "weight_decay": 1e-2,
                "lr_schedule": "cosine",
                "warmup_epochs": 0,
                "min_lr": 1e-6,
                "drop_last": False,
            },
            options={
                "encoder": "both",
                "position": "all",
                "params": ["q", "k", "v"],
                "r": 2,
                "alpha": 1.0,
                "dropout_rate": 0.25,
            },
            note="total_iters = n_iters * shots = 500 x shots iterations, cosine per iteration to 1e-6.",
        ),
    ),
    protocols={"few_shot": (1, 2, 4, 8, 16)},
    not_exact=("The reference trains under fp16 autocast with a GradScaler; runs here are fp32 or bf16.",),
)

__all__ = ["RECIPE"]
