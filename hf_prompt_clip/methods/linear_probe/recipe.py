"""The linear probe's recipe as CoOp's few-shot baseline ran it, as data. Room: `methods/`.

Read from KaiyangZhou/CoOp@ff61507 `lpclip/`.

`lpclip/linear_probe.py` fits scikit-learn's `LogisticRegression(solver="lbfgs", max_iter=1000, penalty="l2")`
on the un-normalised output of `clip_model.visual` (`lpclip/feat_extractor.py`: features of the test transform,
no augmentation), chooses C on `min(shots, 4)` validation images per class by a sweep of
`[1e6, 1e4, 1e2, 1, 1e-2, 1e-4, 1e-6]` and `--num_step 8` rounds of a binary search in log10(C)
(`lpclip/linear_probe.sh`), at 1, 2, 4, 8 and 16 shots. A fit has no optimiser: only method options apply.
"""

from ...core.recipes import Recipe, RecipeEntry

RECIPE = Recipe(
    "Linear probe CLIP (KaiyangZhou/CoOp lpclip)",
    (
        RecipeEntry(
            "KaiyangZhou/CoOp lpclip/linear_probe.py, lpclip/linear_probe.sh, lpclip/feat_extractor.py",
            options={
                "search_grid": [1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6],
                "search_steps": 8,
                "max_iter": 1000,
                "normalize_features": False,
                "feature_space": "projection",
            },
            note="C searched on validation (C unset); features are clip_model.visual's, not normalised.",
        ),
    ),
    protocols={"few_shot": (1, 2, 4, 8, 16)},
    not_exact=(
        "lpclip fits with scikit-learn's LogisticRegression; the recipe keeps the built-in torch L-BFGS (the same "
        "objective, other stopping points, so at large C it can pick another C): `--option solver=sklearn` "
        "(with the `sklearn` extra) is lpclip's call itself.",
        "lpclip draws its few-shot and validation images with NumPy (np.random.seed(seed), per class) from "
        "pre-extracted features; runs here draw with the package's sampler.",
        "The reference extracts features with CLIP in fp16 on a GPU; runs here are fp32 or bf16.",
    ),
)

__all__ = ["RECIPE"]
