"""Reproducing a paper's table: the paper's grid (datasets x shot counts x seeds) trained with the paper's
recipe, then ours against the paper's numbers, with the seeds' spread.

Room: the experiment. `reproduce` runs the grid one cell (dataset, shots, seed) at a time through
`run_experiment`, each in its own folder with a `cell.json` written when it is done: a rerun reads finished
cells instead of training them again (and refuses a folder whose cells were made with other settings).
`compare_with_paper` and `reproduction_table` are pure: results in, rows and markdown out. Nothing here
names a method: the grid comes from the method's `Recipe.protocols` and its paper rows (`paper_results`).

Example:
    >>> rows = compare_with_paper([result], method=config.method)   # doctest: +SKIP
    >>> print(reproduction_table(rows))                             # doctest: +SKIP
    | dataset | shots | metric | ours (mean ± std, 3 seeds) | paper | whose number | difference | outside spread |
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from ..caching.feature_cache import ImageFeatureCache
from ..core.reference import AVERAGE, harmonic_mean
from ..core.registry import PAPER_BASE_MODEL, method_capabilities, method_info
from ..evaluate.protocol_registry import get_protocol
from ..evaluate.records import ExperimentResult
from ..evaluate.reference_numbers import reference_number
from ..evaluate.report import write_report
from ..utils.atomic import atomic_write_text
from ..utils.logs import main_process_logger
from ..utils.settings import SettingError
from .recipes import apply_recipe, method_recipe
from .runner import process_accelerator, run_experiment, shots_folder
from .settings import ExperimentConfig

logger = main_process_logger(__name__)

CELL_FILE = "cell.json"
TABLE_FILE = "reproduction.md"
TABLE_JSON = "reproduction.json"
PLOT_FILE = "reproduction.png"

#: How far from our mean a paper number may be before it is marked: this many standard deviations of the seeds.
SPREAD_STDS = 2.0


def paper_grid(method: str, protocol: str) -> tuple[list[str], list[int | None], list[str]]:
    """The paper's grid for `method` under `protocol`.

    Args:
        method: a registered method with a recipe (`MethodInfo.recipe`).
        protocol: a protocol its recipe covers (`Recipe.protocols`).

    Returns:
        `(datasets, shot counts, targets)`: the training datasets its paper reports for the protocol (its
        `paper_results` rows, the average left out), else the protocol's suite (`Protocol.paper_datasets`:
        CoOp's 11 datasets, or ImageNet for a transfer protocol); the shot counts of its table
        (`Recipe.protocols`); for a transfer protocol the targets its paper reports, else the protocol's
        (`Protocol.paper_targets`).

    Raises:
        SettingError: the method declares no recipe, or its recipe does not cover `protocol`.

    Example:
        >>> datasets, shots, targets = paper_grid(method, "few_shot")   # doctest: +SKIP
        >>> shots                                                     # doctest: +SKIP
        [1, 2, 4, 8, 16]
    """
    recipe = method_recipe(method)
    if recipe is None or not recipe.paper_shots(protocol):
        reported = sorted(recipe.protocols) if recipe is not None else []
        raise SettingError(
            f"{method}'s paper recipe does not cover {{protocol={protocol!r}}}"
            + (f"; it covers {', '.join(reported)}" if reported else " (the method declares no recipe)")
            + ": give one of those, or train with `hf-prompt-clip train` and your own settings."
        )
    found = get_protocol(protocol)
    rows = [r for r in method_info(method).paper_results if r.protocol == protocol and r.dataset != AVERAGE]
    datasets = list(dict.fromkeys(r.dataset for r in rows)) or list(found.paper_datasets)
    targets = []
    if found.needs_targets:
        targets = list(dict.fromkeys(key for r in rows for key in r.metrics)) or list(found.paper_targets)
    return datasets, list(recipe.paper_shots(protocol)), targets


@dataclass(frozen=True)
class Cell:
    """One run of the grid: a dataset, a number of shots, a seed, and its folder."""

    dataset: str
    shots: int | None
    seed: int
    folder: Path


def _request(config: ExperimentConfig, record: dict[str, Any]) -> dict[str, Any]:
    """What a finished cell must match to be reused: the settings that define its result."""
    training = dataclasses.asdict(config.training)
    for name in (  # where and how often it saves, reads and reports: not what it trains
        "output_dir", "resume_from_checkpoint", "overwrite_output_dir", "num_workers", "report_to",
        "checkpoint_every_epochs", "checkpoint_every_steps", "keep_checkpoints",
    ):  # fmt: skip
        training.pop(name, None)
    return json.loads(json.dumps({
        "method": config.method, "options": config.method_options, "base_model": config.base_model,
        "base_revision": config.base_revision, "dataset_revision": config.dataset_revision,
        "protocol": config.protocol, "targets": list(config.targets),
        "few_shot_sampler": config.few_shot_sampler, "image_dtype": config.image_dtype, "training": training,
        "recipe": record,
    }, default=str))  # fmt: skip


def reproduce(
    config: ExperimentConfig,
    datasets: Sequence[str] | None = None,
    shots: Sequence[int | None] | None = None,
    accelerator: Accelerator | None = None,
) -> tuple[list[ExperimentResult], list[dict[str, Any]]]:
    """Run the paper's grid for `config.method` under `config.protocol` with its recipe, cell by cell, and
    write the standard report plus `reproduction.md` / `.json` / `.png` in `config.output_dir`.

    Args:
        config: the method, protocol, seeds, base model and settings (its `dataset` is replaced per cell; its
            `recipe` is `"paper"`; `overrides` the settings the user set over the recipe).
        datasets: training datasets (default: those the paper reports for the protocol).
        shots: shot counts (default: the paper's table's).
        accelerator: the process's Accelerator (default: a new one).

    Returns:
        The results (one per dataset and shot count, over the seeds) and the comparison rows
        (`compare_with_paper`).

    Raises:
        SettingError: the protocol is not in the method's recipe, or a cell's folder holds a cell trained with
            other settings (use another output folder).
    """
    grid_datasets, grid_shots, targets = paper_grid(config.method, config.protocol)
    datasets = list(datasets or grid_datasets)
    if not datasets:
        raise SettingError(
            f"{config.method}'s paper reports no dataset for {{protocol={config.protocol!r}}}; name them with "
            "--datasets."
        )
    learns = method_capabilities(config.method, config.method_options).learns_parameters
    shot_counts = list(shots or grid_shots) if learns else [config.shots]
    seeds = list(config.seeds) if learns else list(config.seeds)[:1]  # every seed would give the same numbers
    config = dataclasses.replace(config, recipe="paper", targets=tuple(config.targets or targets))
    root = Path(config.output_dir)
    # every cell built and its recipe applied before anything trains: a bad one is refused now, not hours in
    grid: dict[tuple[str, int | None], list[tuple[ExperimentConfig, Cell]]] = {}
    for dataset in datasets:
        for count in shot_counts:
            folder = root / dataset / shots_folder(count)
            for seed in seeds:
                cell = dataclasses.replace(
                    config, dataset=dataset, source=None, shots=count, seeds=(seed,), output_dir=str(folder),
                    push_to_hub=None,
                )  # fmt: skip
                apply_recipe(cell)
                where = Cell(dataset, count, seed, folder / f"seed{seed}")
                grid.setdefault((dataset, count), []).append((cell, where))
    accelerator = process_accelerator(config, accelerator)
    cache = ImageFeatureCache(directory=config.feature_cache)
    results = [
        _merged([_run_cell(cell, where, accelerator, cache) for cell, where in cells])
        for cells in grid.values()
    ]
    rows = compare_with_paper(results, config.method, config.base_model)
    if accelerator.is_main_process:
        write_report(results, root)
        atomic_write_text(root / TABLE_JSON, json.dumps(rows, indent=1))
        atomic_write_text(root / TABLE_FILE, reproduction_markdown(config, rows))
        plot_reproduction(rows, root / PLOT_FILE, f"{method_info(config.method).title}, {config.protocol}")
    accelerator.wait_for_everyone()
    return results, rows


def _run_cell(config: ExperimentConfig, cell: Cell, accelerator, cache) -> ExperimentResult:
    """The cell's result: read from its `cell.json` when it finished before with the same settings, else run."""
    applied, record = apply_recipe(config)
    request = _request(applied, record.to_dict())
    done = cell.folder / CELL_FILE
    if done.is_file():
        saved = json.loads(done.read_text(encoding="utf-8"))
        if saved.get("request") != request:
            raise SettingError(
                f"{cell.folder} holds a cell trained with other settings than this run's (method, options, "
                "recipe, training or data settings differ); give another {output_dir}, or delete that folder "
                "to train it again."
            )
        logger.info(
            "%s, %s shots, seed %d: done before, read from %s", cell.dataset, cell.shots, cell.seed, done
        )
        return ExperimentResult.from_dict(saved["result"])
    result = run_experiment(config, accelerator, write_results=False, push=False, feature_cache=cache)
    if accelerator.is_main_process:
        atomic_write_text(done, json.dumps({"request": request, "result": result.to_dict()}, indent=1))
    accelerator.wait_for_everyone()
    return result


def _merged(cells: Sequence[ExperimentResult]) -> ExperimentResult:
    """One result over the seeds of one (dataset, shots): the seeds' runs together, their mean and spread."""
    first = cells[0]
    recorded = {
        name: getattr(first, name)
        for name in ("data", "trained_on", "trained_protocol", "hub_datasets", "image_dtype", "augment_views")
    }
    merged = ExperimentResult.of_runs(
        first.method, first.base_model, first.dataset, first.protocol, first.shots,
        [run for cell in cells for run in cell.runs], **recorded, recipe=first.recipe,
    )  # fmt: skip
    return dataclasses.replace(merged, synthetic=first.synthetic)


def compare_with_paper(
    results: Sequence[ExperimentResult], method: str, base_model: str | None = PAPER_BASE_MODEL
) -> list[dict[str, Any]]:
    """One row per (dataset, shots, metric): ours (mean, std, seeds), the paper's number and whose it is, the
    difference, and whether the paper's number lies outside our mean ± `SPREAD_STDS` std (`None` when the
    seeds give no spread: one seed, or seeds that agree exactly).

    Where the results cover every dataset of the protocol's suite (`Protocol.paper_datasets`) and the paper
    reports its average, an `average` row follows, computed per seed as the papers average (H from the average
    base and new accuracies). A result on the synthetic world, or with another base model than the papers'
    ViT-B/16, has no paper number: its row says why (`comparable: False`, `why`).

    Args:
        results: one result per dataset and shot count, over the seeds (what `reproduce` returns).
        method: the method whose paper rows (`paper_results`) are compared.
        base_model: the base CLIP the results were measured with.

    Returns:
        Rows as `reproduction.json` holds them.

    Example:
        >>> from hf_prompt_clip.evaluate.records import RunResult
        >>> runs = [RunResult.measured(s, {"accuracy": a}) for s, a in ((1, 70.0), (2, 72.0), (3, 71.0))]
        >>> result = ExperimentResult.of_runs("m", "openai/clip-vit-base-patch16", "dtd", "few_shot", 16, runs)
        >>> compare_with_paper([result], "m")[0]["why"]
        'the paper reports no number for this cell'
    """
    rows = []
    for result in results:
        seeds = len(result.runs)
        means = dict(result.mean_full_precision or result.mean)
        stds = dict(result.std_full_precision or result.std or {}) if seeds > 1 else None
        why = _not_comparable(result.synthetic, base_model)
        paper = None if why else reference_number(method, result.dataset, result.protocol, result.shots)
        rows += _rows(result.dataset, result.shots, means, stds, seeds, paper, why)
    for protocol, shots, runs in _suite_runs(results):
        paper = reference_number(method, AVERAGE, protocol, shots)
        if paper is None or base_model != PAPER_BASE_MODEL:
            continue
        per_seed = [_average(metrics) for metrics in runs]
        keys = per_seed[0].keys()
        means = {key: statistics.fmean(seed[key] for seed in per_seed) for key in keys}
        stds = (
            {key: statistics.stdev(seed[key] for seed in per_seed) for key in keys} if len(runs) > 1 else None
        )
        rows += _rows(AVERAGE, shots, means, stds, len(runs), paper, None)
    return rows


def _not_comparable(synthetic: bool, base_model: str | None) -> str | None:
    if synthetic:
        return "not comparable: the synthetic world"
    if base_model != PAPER_BASE_MODEL:
        return f"not comparable: base model {base_model}, the papers use {PAPER_BASE_MODEL}"
    return None


def _rows(dataset, shots, means, stds, seeds, paper, why) -> list[dict[str, Any]]:
    """The comparison rows of one (dataset, shots): one per metric."""
    if paper is None and why is None:
        why = "the paper reports no number for this cell"
    rows = []
    for metric, mean in means.items():
        std = None if stds is None else stds.get(metric, 0.0)
        number = None if paper is None else paper.metrics.get(metric)
        row = {
            "dataset": dataset, "shots": shots, "metric": metric, "ours": round(mean, 2),
            "std": None if std is None else round(std, 2), "seeds": seeds, "paper": number,
            "source": None if paper is None else paper.source, "comparable": number is not None,
            "why": None if number is not None else why or "the paper reports no number for this metric",
        }  # fmt: skip
        if number is not None:
            row["difference"] = round(mean - number, 2)
            row["outside_spread"] = None if not std else abs(mean - number) > SPREAD_STDS * std
        rows.append(row)
    return rows


def _suite_runs(results: Sequence[ExperimentResult]) -> list[tuple[str, int | None, list[list[dict]]]]:
    """For each (protocol, shots) whose results cover the protocol's whole suite of datasets (and test on
    their own data): per seed present in every one, the datasets' exact metrics."""
    found = []
    for protocol, shots in dict.fromkeys((r.protocol, r.shots) for r in results if not r.synthetic):
        suite = get_protocol(protocol).paper_datasets
        members = {r.dataset: r for r in results if (r.protocol, r.shots) == (protocol, shots)}
        if not get_protocol(protocol).tests_training_data or not suite or not set(suite) <= set(members):
            continue
        by_seed = [{run.seed: run.exact for run in members[dataset].runs} for dataset in suite]
        common = [seed for seed in by_seed[0] if all(seed in runs for runs in by_seed)]
        if common:
            found.append((protocol, shots, [[runs[seed] for runs in by_seed] for seed in common]))
    return found


def _average(metrics: Sequence[dict[str, float]]) -> dict[str, float]:
    """The average over datasets of one seed's metrics; `hm` as H of the average base and new."""
    keys = [key for key in metrics[0] if all(key in m for m in metrics)]
    average = {key: statistics.fmean(m[key] for m in metrics) for key in keys}
    if {"base", "new"} <= average.keys():
        average["hm"] = harmonic_mean(average["base"], average["new"])
    return average


def reproduction_table(rows: Sequence[dict[str, Any]]) -> str:
    """The comparison rows as a markdown table: ours (mean ± std), seeds, the paper's number and whose it is, the
    difference and whether the paper's number is outside the spread (rows without a paper number say why).

    Args:
        rows: what `compare_with_paper` returns.
    """
    lines = [
        f"| dataset | shots | metric | ours (mean ± std) | seeds | paper | whose number | difference | outside ±{SPREAD_STDS:g} std |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ours = f"{row['ours']:.2f}" + ("" if row["std"] is None else f" ± {row['std']:.2f}")
        shots = "all" if row["shots"] is None else row["shots"]
        if row["comparable"]:
            outside = {None: "n/a (no spread)", True: "**yes**", False: "no"}[row["outside_spread"]]
            paper, source, difference = f"{row['paper']:.2f}", row["source"], f"{row['difference']:+.2f}"
        else:
            paper, source, difference, outside = "—", row["why"], "—", "—"
        lines.append(
            f"| {row['dataset']} | {shots} | {row['metric']} | {ours} | {row['seeds']} | {paper} | {source} | "
            f"{difference} | {outside} |"
        )
    return "\n".join(lines)


def reproduction_markdown(config: ExperimentConfig, rows: Sequence[dict[str, Any]]) -> str:
    """`reproduction.md`: what ran (method, protocol, recipe, seeds, sampler, base model) and the table.

    Args:
        config: the reproduction's configuration (`reproduce`'s, with the recipe set).
        rows: what `compare_with_paper` returns.
    """
    info = method_info(config.method)
    recipe = method_recipe(config.method)
    given = ", ".join(config.overrides or ()) or "none"
    return (
        f"# Reproducing {info.title} ({info.paper}): {config.protocol}\n\n"
        f"- recipe: {recipe.name if recipe else 'none'} (`--recipe paper`); settings given over it: {given} "
        "(each run's `recipe` entry in results.json lists its deviations)\n"
        f"- seeds: {', '.join(map(str, config.seeds))}; few-shot sampler: {config.few_shot_sampler}; base model: "
        f"{config.base_model}\n"
        f"- a paper number is marked when it lies outside our mean ± {SPREAD_STDS:g} standard deviations of "
        "the seeds\n\n" + reproduction_table(rows) + "\n"
    )


def plot_reproduction(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path | None:
    """Paper (x) against ours (y, ± std) for every comparable row, with the line of equality; red where the
    paper's number is outside our spread.

    Args:
        rows: what `compare_with_paper` returns.
        path: the PNG to write.
        title: the chart's title.

    Returns:
        The path, or `None` (and no file: an earlier one is removed) when no row is comparable.
    """
    points = [row for row in rows if row["comparable"]]
    if not points:
        Path(path).unlink(missing_ok=True)
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 5))
    paper = [row["paper"] for row in points]
    ours = [row["ours"] for row in points]
    errors = [row["std"] or 0.0 for row in points]
    for outside in (False, True):  # red: the paper's number is outside our seeds' spread
        chosen = [i for i, row in enumerate(points) if bool(row.get("outside_spread")) is outside]
        if chosen:
            axis.errorbar(
                [paper[i] for i in chosen], [ours[i] for i in chosen], yerr=[errors[i] for i in chosen], fmt="o",
                capsize=3, color="tab:red" if outside else "tab:blue",
                label=f"paper outside ours ± {SPREAD_STDS:g} std" if outside else "within the spread",
            )  # fmt: skip
    for row in points:
        label = f"{row['dataset']}" + ("" if row["shots"] in (None, 16) else f" ({row['shots']})")
        axis.annotate(
            label, (row["paper"], row["ours"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    low = math.floor(min(paper + ours) - 2)
    high = math.ceil(max(paper + ours) + 2)
    axis.axline((low, low), slope=1, color="k", linestyle="--", linewidth=0.8, label="ours = paper")
    axis.set(xlim=(low, high), ylim=(low, high), xlabel="paper (%)", ylabel="ours (%)", title=title)
    axis.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


__all__ = [
    "CELL_FILE",
    "PLOT_FILE",
    "SPREAD_STDS",
    "TABLE_FILE",
    "TABLE_JSON",
    "compare_with_paper",
    "paper_grid",
    "plot_reproduction",
    "reproduce",
    "reproduction_markdown",
    "reproduction_table",
]
