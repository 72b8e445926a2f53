"""The cards of the adapters the project publishes (`model_cards/<name>.md` at the repository's top).

Room: `hub/`.

Each method's registry entry lists its published adapters (`MethodInfo.published`: the paper's
benchmark, protocol, shots and training recipe). Until an adapter is trained and measured, its card
is built by the package's card builder from that entry alone: the config it will have, the command
that trains, measures and publishes it, and the paper's numbers for the setting; it claims no
results. Publishing it (`--push-to-hub`) replaces the card with one of its measured results.

Regenerate the folder with one command (a test checks that it changes nothing):

    python -m hf_prompt_clip.hub.published            # writes model_cards/
    python -m hf_prompt_clip.hub.published --check    # exit 1 if a card is stale

Example:
    >>> [adapter.repo_id for _, adapter in published_adapters()][:2]
    ['hf-prompt-clip/zeroshot-vitb16-imagenet', 'hf-prompt-clip/coop-vitb16-imagenet']
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from huggingface_hub import ModelCard

from ..core.recipes import ResolvedRecipe
from ..core.registry import METHOD_INFO, PublishedAdapter, get_method, method_config, method_info
from ..data.loading import hub_dataset
from ..data.registry import get_benchmark
from ..evaluate.protocol_registry import get_protocol
from ..evaluate.reference_numbers import PAPER_BACKBONE, reference_number, reference_numbers
from ..serialization.card import build_model_card
from ..utils.atomic import atomic_write_text

CARDS_FOLDER = "model_cards"
"""The top-level folder of the published adapters' cards."""

SEEDS = (1, 2, 3)
"""The seeds every published adapter is measured with (the papers' three)."""


def seeds_of(adapter: PublishedAdapter) -> tuple[int, ...]:
    """`SEEDS`, or seed 1 alone for an adapter that trains nothing (every seed would give its numbers)."""
    return SEEDS if adapter.shots != 0 else SEEDS[:1]


def published_adapters() -> list[tuple[str, PublishedAdapter]]:
    """`(method, adapter)` for every adapter the registered methods publish, in table order."""
    return [(method, adapter) for method, info in METHOD_INFO.items() for adapter in info.published]


def train_command(method: str, adapter: PublishedAdapter) -> str:
    """The `hf-prompt-clip train` command that trains, measures (seeds 1 2 3) and publishes `adapter`.

    Example:
        >>> train_command("coop", adapter)
        'hf-prompt-clip train --method coop --dataset imagenet --protocol domain_generalization ...'
    """
    words = ["hf-prompt-clip", "train", "--method", method, "--dataset", adapter.benchmark]
    words += ["--protocol", adapter.protocol]
    if adapter.targets:
        words += ["--targets", *adapter.targets]
    if adapter.shots != 0:  # a method that trains nothing takes no shots
        words += ["--shots", "all" if adapter.shots is None else str(adapter.shots)]
    words += ["--seed", *map(str, seeds_of(adapter))]
    for flag, value in adapter.training.items():
        words += [f"--{flag}", str(value)]
    for name, value in adapter.options.items():
        words += ["--option", f"{name}={value}"]
    words += ["--base-model", adapter.base_model, "--base-revision", adapter.base_revision]
    words += ["--no-baseline", "--push-to-hub", adapter.repo_id]
    return shlex.join(words)


def paper_numbers(method: str, adapter: PublishedAdapter) -> tuple[str | None, str | None]:
    """`(markdown table, source)` of what the paper reports for the adapter's setting, or `(None, None)`.

    A paper that reports the setting only with another backbone (Tip-Adapter: ResNet-50) is shown with its
    backbone named and marked as not comparable with the adapter's ViT-B/16."""
    row = reference_number(method, adapter.benchmark, adapter.protocol, adapter.shots)
    if row is None:
        backbones = dict.fromkeys(r.backbone for r in reference_numbers(None) if r.method == method)
        row = next(
            (
                found
                for backbone in backbones
                if (
                    found := reference_number(
                        method, adapter.benchmark, adapter.protocol, adapter.shots, backbone
                    )
                )
            ),
            None,
        )
    if row is None:
        return None, None
    source = row.source
    if row.backbone != PAPER_BACKBONE:
        source += f"; measured with CLIP {row.backbone}, not this adapter's {PAPER_BACKBONE}, so not directly comparable"
    transfer = not get_protocol(adapter.protocol).tests_training_data
    lines = ["| test set | accuracy (%) |" if transfer else "| metric | accuracy (%) |", "|---|---|"]
    lines += [f"| {key} | {value:.2f} |" for key, value in row.metrics.items()]
    return "\n".join(lines), source


def published_config(method: str, adapter: PublishedAdapter):
    """The config the adapter will have: the method's, on the benchmark's classes (when the package
    ships them) with the benchmark's own options (templates, super-category) and the adapter's."""
    config_class, _ = get_method(method)
    spec = get_benchmark(adapter.benchmark)
    names = list(spec.class_names) if spec.class_names else None
    prompts = spec.prompt_names_for(names) if names else None
    recipe = published_recipe(method, adapter)
    options = {**(recipe.options if recipe else {}), **adapter.options}
    options = {**method_config(method, options).benchmark_defaults(spec), **options}
    return config_class(
        base_model_name_or_path=adapter.base_model,
        base_model_revision=adapter.base_revision,
        class_names=names,
        prompt_names=prompts if prompts != names else None,
        **options,
    )


def published_recipe(method: str, adapter: PublishedAdapter) -> ResolvedRecipe | None:
    """The paper recipe the adapter's command applies (`--recipe paper`, the default on its benchmark), or
    `None` when it trains nothing or the method declares none.

    Args:
        method: the adapter's method.
        adapter: the published adapter (its benchmark, protocol and shots are the cell).
    """
    recipe = method_info(method).recipe
    if recipe is None or adapter.shots == 0:
        return None
    return recipe.resolve(adapter.protocol, adapter.benchmark, adapter.shots)


def published_card(method: str, adapter: PublishedAdapter) -> ModelCard:
    """The card of a published adapter before it is trained (see the module docstring)."""
    spec = get_benchmark(adapter.benchmark)
    table, source = paper_numbers(method, adapter)
    training = {"protocol": adapter.protocol, "shots": "all" if adapter.shots is None else adapter.shots}
    if adapter.targets:
        training["targets"] = " ".join(adapter.targets)
    recipe = published_recipe(method, adapter)
    if recipe:  # the settings the command applies, by name; its flags repeat some of them
        training.update(recipe.training)
        training["recipe"] = recipe.record().to_dict()
    else:
        training.update(adapter.training)
    training["seed"] = " ".join(map(str, seeds_of(adapter)))
    hub = hub_dataset(spec, split="train")
    return build_model_card(
        published_config(method, adapter),
        training,
        repo_id=adapter.repo_id,
        model_name=adapter.name,
        datasets=[hub["id"]] if hub else None,
        num_classes=spec.num_classes,
        pending_command=train_command(method, adapter),
        paper_table=table,
        paper_source=source,
    )


def write_published_cards(folder: str | Path = CARDS_FOLDER) -> list[Path]:
    """Write `<folder>/<name>.md` for every published adapter (removing the cards of adapters no longer
    published) and return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = {f"{adapter.name}.md" for _, adapter in published_adapters()}
    for old in folder.glob("*.md"):
        if old.name not in names:
            old.unlink()
    paths = []
    for method, adapter in published_adapters():
        path = folder / f"{adapter.name}.md"
        atomic_write_text(path, str(published_card(method, adapter)))
        paths.append(path)
    return paths


def stale_cards(folder: str | Path = CARDS_FOLDER) -> list[str]:
    """The card files of `folder` that regenerating would change, add or remove (empty: up to date)."""
    folder = Path(folder)
    expected = {f"{adapter.name}.md": str(published_card(m, adapter)) for m, adapter in published_adapters()}
    present = {path.name for path in folder.glob("*.md")} if folder.is_dir() else set()
    stale = [
        name
        for name, text in expected.items()
        if name not in present or (folder / name).read_text(encoding="utf-8") != text
    ]
    return sorted(stale + [name for name in present if name not in expected])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hf_prompt_clip.hub.published",
        description="Write the cards of the adapters the project publishes (model_cards/).",
    )
    parser.add_argument("--output-dir", default=CARDS_FOLDER, help="the folder of the cards")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a card is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_cards(args.output_dir)
        if stale:
            print(
                f"stale in {args.output_dir}: {', '.join(stale)}; run python -m hf_prompt_clip.hub.published"
            )
        return 1 if stale else 0
    for path in write_published_cards(args.output_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
