"""Markdown tables, plots and report folders from evaluation results.

Room: `evaluate/`.

A result is one `ExperimentResult` (`hf_prompt_clip.evaluate.records`) per (method, dataset, protocol,
shots), or the dict of the results schema it writes (`to_dict()`; this module works on those dicts):

    {"method": <a registered method name>, "base_model": "openai/clip-vit-base-patch16", "dataset": "dtd",
     "protocol": "base2new", "shots": 16, "synthetic": False,
     "runs": [{"seed": 1, "metrics": {"base": 80.1, "new": 60.2, "hm": 68.7}}, ...],
     "mean": {"base": 80.3, "new": 60.0, "hm": 68.6}, "std": {"base": 0.4, "new": 0.9, "hm": 0.5}}

Metric keys: `accuracy` (few_shot); `base`, `new`, `hm` (base2new); one key per target dataset
(cross_dataset, domain_generalization). Accuracies are in percent, rounded to 2 decimals in `mean`,
`std` and `metrics` (`*_full_precision` hold the exact values). `shots` is what the adapter was
trained with: a number per class, `None` for the full training set, `0` for nothing (zero-shot CLIP);
`trained_on` names the training benchmark when it is not `dataset`. Protocols come from the protocol
registry (`evaluate.protocol_registry`): their titles, their order, and which charts they get (base-to-new
bars for protocols tested on base and new classes, accuracy curves for those tested on their own split).

Example:
    >>> paths = write_report(results, "outputs/report")   # results.json, results.md, PNG charts
    >>> print(results_table(results))

Figures are drawn on matplotlib's Agg canvas without pyplot, so the global backend is untouched.
"""

from __future__ import annotations

import io
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from statistics import mean

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..core.recipes import describe_recipe
from ..core.registry import method_order
from ..utils.atomic import atomic_write_bytes, atomic_write_text
from .protocol_registry import BASE_AND_NEW, OWN_TEST_SPLIT, get_protocol, protocol_keys
from .protocols import harmonic_mean
from .records import ExperimentResult, as_dict
from .reference_numbers import AVERAGE, BASE_TO_NEW_DATASETS, reference_metrics


class _ProtocolTitles(Mapping):
    """Protocol key -> readable name, in table order: a live view of the protocol registry."""

    def __getitem__(self, key: str) -> str:
        if key not in protocol_keys():
            raise KeyError(key)
        return get_protocol(key).title

    def __iter__(self) -> Iterator[str]:
        return iter(protocol_keys())

    def __len__(self) -> int:
        return len(protocol_keys())


PROTOCOLS: Mapping[str, str] = _ProtocolTitles()
"""Protocol key -> readable name, in table order (the protocol registry's)."""


def _tests_on(result: dict, what: str) -> bool:
    """Whether the result's protocol tests on `what` (`BASE_AND_NEW`, `OWN_TEST_SPLIT`, ...)."""
    return get_protocol(result["protocol"]).tests_on == what


BASE_TO_NEW_METRICS: tuple[str, ...] = ("base", "new", "hm")
METRIC_NAMES: dict[str, str] = {"accuracy": "accuracy", "base": "base", "new": "new", "hm": "H"}
REQUIRED_KEYS: tuple[str, ...] = ("method", "dataset", "protocol", "runs", "mean", "std")

SYNTHETIC_NOTE = (
    "*(synthetic)*: measured on hf_prompt_clip's synthetic offline world (generated images, a tiny "
    "CLIP); these numbers check the machinery and are not comparable with the papers' numbers."
)
PAPER_NOTE = (
    "paper: the number the method's paper reports with a ViT-B/16 CLIP "
    "(`hf_prompt_clip.evaluate.reference_numbers`); H = 2·base·new / (base + new)."
)
BAR_COLORS: dict[str, str] = {"base": "#4C72B0", "new": "#DD8452", "hm": "#55A868"}

REPORT_FILES: dict[str, str] = {
    "json": "results.json",
    "markdown": "results.md",
    "base_to_new": "base_to_new.png",
    "accuracy_vs_shots": "accuracy_vs_shots.png",
    "base_to_new_vs_shots": "base_to_new_vs_shots.png",
}
"""Key of `write_report`'s answer -> file name in the output folder."""


# ---------------------------------------------------------------------------------------- checks


def check_results(results: Iterable[ExperimentResult | dict]) -> list[dict]:
    """Return `results` as a list of dicts of the results schema (`ExperimentResult.to_dict()`) after
    checking each has the schema's keys and a registered protocol.

    Raises:
        ValueError: naming the result and what it lacks.
    """
    results = [as_dict(result) for result in results]
    for index, result in enumerate(results):
        missing = [key for key in REQUIRED_KEYS if key not in result]
        if missing:
            raise ValueError(
                f"Result {index} lacks {missing}; each result needs {list(REQUIRED_KEYS)} "
                "(see the results schema in docs/reports.md)."
            )
        if result["protocol"] not in protocol_keys():
            raise ValueError(
                f"Result {index} has protocol {result['protocol']!r}; expected one of {list(protocol_keys())}."
            )
    return results


# ---------------------------------------------------------------------------------------- tables


def _order(key: str, known: Sequence[str]) -> tuple[int, str]:
    """Sort key: known keys in their given order first, then the rest alphabetically."""
    return (known.index(key), "") if key in known else (len(known), key)


def _sort_key(result: dict) -> tuple:
    dataset_known = (*BASE_TO_NEW_DATASETS, AVERAGE)
    return (
        _order(result["protocol"], protocol_keys()),
        _order(result["method"], method_order()),
        result.get("base_model") or "",
        _order(result["dataset"], dataset_known),
        result.get("shots") or 0,
    )


def base_to_new_averages(results: Iterable[dict]) -> list[dict]:
    """Averages over datasets of base-to-new results, as the papers compute them.

    Results are grouped by (method, base model, shots, synthetic); a group covering two or more
    datasets gives one result-like dict: the mean of base and of new over datasets, H of those means,
    empty `runs`/`std`, and the averaged `datasets`. Its `dataset` is `"average"` when the group covers
    exactly the papers' 11 datasets (so the papers' averages apply), else `"average of K datasets"`.
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for result in results:
        if _tests_on(result, BASE_AND_NEW):
            key = (
                result["protocol"],
                result["method"],
                result.get("base_model"),
                result.get("shots"),
                bool(result.get("synthetic")),
            )
            groups[key].append(result)
    averages = []
    for (protocol, method, base_model, shots, synthetic), members in groups.items():
        datasets = [member["dataset"] for member in members]
        if len(set(datasets)) < 2:
            continue
        exact = [member.get("mean_full_precision") or member["mean"] for member in members]
        base = mean(values["base"] for values in exact)
        new = mean(values["new"] for values in exact)
        name = (
            AVERAGE
            if sorted(datasets) == sorted(BASE_TO_NEW_DATASETS)
            else f"average of {len(datasets)} datasets"
        )
        averages.append(
            {
                "method": method,
                "base_model": base_model,
                "dataset": name,
                "protocol": protocol,
                "shots": shots,
                "synthetic": synthetic,
                "runs": [],
                "mean": {"base": base, "new": new, "hm": harmonic_mean(base, new)},
                "std": {},
                "datasets": datasets,
            }
        )
    return averages


def _paper_metrics(result: dict) -> dict[str, float] | None:
    """The papers' numbers for this result; never for synthetic results, nor for an adapter evaluated
    on other data or with another protocol than it was trained for (`trained_on`, `trained_protocol`)."""
    if result.get("synthetic") or result.get("trained_on") or result.get("trained_protocol"):
        return None
    return reference_metrics(result["method"], result["dataset"], result["protocol"], result.get("shots"))


def format_accuracy(mean_value: float, std_value: float | None, seeds: int) -> str:
    """`"80.30 ± 0.40"` over several seeds, `"80.30"` for one seed or an average row."""
    if seeds > 1 and std_value is not None:
        return f"{mean_value:.2f} ± {std_value:.2f}"
    return f"{mean_value:.2f}"


def _drawn(result: dict) -> str:
    """`"min 1, median 3"` when some class had fewer examples than the shots asked, else `""`."""
    drawn = result.get("shots_drawn")
    return f"min {drawn['min']}, median {drawn['median']:g}" if drawn else ""


def shots_label(result: dict) -> str:
    """The table's shots cell: `"16"`, `"all"` (full training set), `"0 (zero-shot)"`, `"16 (on dtd)"`,
    `"16 (drawn: min 1, median 3)"` when some class had fewer examples than asked."""
    shots = result.get("shots")
    text = "all" if shots is None else "0 (zero-shot)" if shots == 0 else str(shots)
    if _drawn(result):
        text += f" (drawn: {_drawn(result)})"
    return f"{text} (on {result['trained_on']})" if result.get("trained_on") else text


def shots_setting(result: dict) -> str:
    """The training in words: `"16 shots"`, `"full training set"`, `"zero-shot"`, `"16 shots on dtd"`,
    `"16 shots asked, min 1, median 3 drawn"`."""
    shots = result.get("shots")
    text = "full training set" if shots is None else "zero-shot" if shots == 0 else f"{shots} shots"
    if _drawn(result):
        text += f" asked, {_drawn(result)} drawn"
    return f"{text} on {result['trained_on']}" if result.get("trained_on") else text


def _dataset_label(result: dict) -> str:
    return f"{result['dataset']} *(synthetic)*" if result.get("synthetic") else result["dataset"]


def _table_rows(result: dict) -> list[list[str]]:
    """One markdown row per metric of `result`."""
    paper = _paper_metrics(result) or {}
    seeds = len(result["runs"])
    rows = []
    for key, value in result["mean"].items():
        rows.append(
            [
                result["method"],
                _dataset_label(result),
                get_protocol(result["protocol"]).title,
                shots_label(result),
                METRIC_NAMES.get(key, key),
                format_accuracy(value, result["std"].get(key), seeds),
                str(seeds) if seeds else "—",
                f"{paper[key]:.2f}" if key in paper else "—",
            ]
        )
    return rows


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def results_table(results: Iterable[dict]) -> str:
    """A markdown table of `results`: one row per metric, mean ± std over seeds, the papers' numbers.

    Base-to-new results over two or more datasets also get average rows (see `base_to_new_averages`).
    Synthetic results are marked `*(synthetic)*` and never get a paper number; notes under the table
    explain the marks and list the base models.
    """
    results = check_results(results)
    rows = [
        row
        for result in sorted(results + base_to_new_averages(results), key=_sort_key)
        for row in _table_rows(result)
    ]
    header = [
        "method",
        "dataset",
        "protocol",
        "shots",
        "metric",
        "ours (mean ± std)",
        "seeds",
        "paper (ViT-B/16)",
    ]
    notes = [PAPER_NOTE]
    if any(result.get("synthetic") for result in results):
        notes.append(SYNTHETIC_NOTE)
    base_models = sorted({result.get("base_model") or "unknown" for result in results})
    notes.append("Base model: " + ", ".join(f"`{name}`" for name in base_models) + ".")
    recipes = recipe_notes(results)
    if recipes:
        notes.append("Training recipes:\n" + "\n".join(recipes))
    return _markdown_table(header, rows) + "\n\n" + "\n\n".join(notes) + "\n"


def recipe_notes(results: Iterable[dict]) -> list[str]:
    """One line per method and number of shots that trained: the recipe it used and its deviations (the
    results' `recipe` entries, `core.recipes.describe_recipe`), or one line when no run used a paper's recipe.
    Results of earlier releases record none.

    Example:
        >>> recipe_notes([{"method": "m", "shots": 16, "recipe": {"recipe": "paper", "name": "M (its repo)",
        ...     "cell": "few_shot, dtd, 16 shots", "deviations": {"epochs": {"recipe": 200, "used": 1}}}}])
        ["- m, 16 shots: the paper's recipe (M (its repo); few_shot, dtd, 16 shots), except epochs 1 (recipe: 200)"]
    """
    recorded = [result for result in results if result.get("recipe")]
    if recorded and all(result["recipe"].get("recipe") == "none" for result in recorded):
        return ["- every method that trained: the plain defaults (recipe none), not the papers' recipes"]
    lines = []
    for result in recorded:
        line = f"- {result['method']}, {shots_setting(result)}: {describe_recipe(result['recipe'])}"
        if line not in lines:
            lines.append(line)
    return lines


# ---------------------------------------------------------------------------------------- plots


def _new_figure(panels: int, panel_width: float, panel_height: float = 3.6) -> tuple[Figure, list]:
    """A figure with `panels` subplots, up to 3 per row, drawn on an Agg canvas."""
    columns = min(panels, 3)
    rows = -(-panels // columns)
    figure = Figure(figsize=(panel_width * columns, panel_height * rows + 0.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, axes[:panels]


def _series_label(result: dict, several_base_models: bool, with_shots: bool = False) -> str:
    """The method, plus the base model's short name when the results mix base models, plus the shots
    when the results mix numbers of shots (`with_shots`)."""
    label = result["method"]
    if several_base_models:
        label += f" ({str(result.get('base_model')).rstrip('/').split('/')[-1]})"
    if with_shots and result.get("shots") != 0:
        label += f" {shots_label(result)}"
    return label


def _panel_title(dataset: str, members: Iterable[dict]) -> str:
    return f"{dataset} (synthetic)" if any(member.get("synthetic") for member in members) else dataset


def _by_dataset(results: Iterable[dict]) -> dict[str, list[dict]]:
    panels: dict[str, list[dict]] = defaultdict(list)
    for result in sorted(results, key=_sort_key):
        panels[result["dataset"]].append(result)
    return panels


def _several_base_models(results: Iterable[dict]) -> bool:
    return len({result.get("base_model") for result in results}) > 1


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=120, format=path.suffix.lstrip(".") or "png")
    atomic_write_bytes(path, buffer.getvalue())  # a kill leaves the old chart or the new one
    return path


def _draw_base_to_new_panel(
    axis, title: str, members: list[dict], several_base_models: bool, with_shots: bool = False
) -> None:
    """Grouped bars: one group per method, bars for base, new and H with std error bars and values."""
    width = 0.26
    positions = range(len(members))
    for offset, key in enumerate(BASE_TO_NEW_METRICS):
        heights = [member["mean"][key] for member in members]
        errors = [member["std"].get(key, 0.0) for member in members]
        bars = axis.bar(
            [x + (offset - 1) * width for x in positions],
            heights,
            width,
            yerr=errors if any(errors) else None,
            capsize=2,
            color=BAR_COLORS[key],
            label=METRIC_NAMES[key],
        )
        axis.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    labels = [_series_label(member, several_base_models, with_shots) for member in members]
    axis.set_xticks(list(positions), labels, rotation=30 if with_shots else 0)
    axis.set_ylim(0, 110)
    axis.set_ylabel("accuracy (%)")
    axis.set_title(title)
    axis.grid(axis="y", alpha=0.3)


def plot_base_to_new(results: Iterable[dict], path: str | os.PathLike) -> Path:
    """Bar chart of base-to-new results: a panel per dataset (and average), base/new/H bars per method.

    Raises:
        ValueError: when no result has protocol `"base2new"`.
    """
    results = [result for result in check_results(results) if _tests_on(result, BASE_AND_NEW)]
    if not results:
        raise ValueError("plot_base_to_new needs results with protocol 'base2new'; none were given.")
    panels = _by_dataset(results + base_to_new_averages(results))
    several = _several_base_models(results)
    with_shots = len({result.get("shots") for result in results if result.get("shots") != 0}) > 1
    figure, axes = _new_figure(len(panels), panel_width=max(4.5, 1.3 * max(map(len, panels.values())) + 1))
    for axis, (dataset, members) in zip(axes, panels.items()):
        _draw_base_to_new_panel(axis, _panel_title(dataset, members), members, several, with_shots)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=3)
    figure.suptitle("Base-to-new accuracy (H: harmonic mean)")
    return _save(figure, path)


def _draw_shots_panel(axis, title: str, members: list[dict], several_base_models: bool, metric: str) -> None:
    """One line per method of `metric` over the number of shots, with std error bars; methods that train
    nothing (0 shots: zero-shot CLIP) are a dashed horizontal line."""
    series: dict[str, list[dict]] = defaultdict(list)
    for member in members:
        series[_series_label(member, several_base_models)].append(member)
    shots = sorted({member["shots"] for member in members if member["shots"]})
    for label, points in series.items():
        trained = sorted((p for p in points if p["shots"]), key=lambda point: point["shots"])
        for point in points:
            if point["shots"] == 0:
                axis.axhline(
                    point["mean"][metric], linestyle="--", color="grey", label=f"{label} (zero-shot)"
                )
        if trained:
            axis.errorbar(
                [point["shots"] for point in trained],
                [point["mean"][metric] for point in trained],
                yerr=[point["std"].get(metric, 0.0) for point in trained],
                marker="o",
                capsize=3,
                label=label,
            )
    axis.set_xscale("log", base=2)
    axis.set_xticks(shots, [str(value) for value in shots])
    axis.set_xlabel("shots per class")
    axis.set_ylabel(
        f"{METRIC_NAMES.get(metric, metric)} accuracy (%)" if metric != "accuracy" else "accuracy (%)"
    )
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)


def _shot_results(results: Iterable[dict], tests_on: str) -> list[dict]:
    """Results of the protocols that test on `tests_on` (`OWN_TEST_SPLIT`: few-shot; `BASE_AND_NEW`) with a
    number of shots (zero-shot's 0 included; not full-training-set runs)."""
    return [result for result in results if _tests_on(result, tests_on) and result.get("shots") is not None]


def _trained_shot_counts(results: Iterable[dict]) -> set[int]:
    return {result["shots"] for result in results if result["shots"]}


def plot_accuracy_vs_shots(results: Iterable[dict], path: str | os.PathLike) -> Path:
    """Line chart of few-shot accuracy over the number of shots: a panel per dataset, a line per method
    (zero-shot CLIP as a dashed line).

    Raises:
        ValueError: when no few-shot result was trained with a number of shots.
    """
    results = _shot_results(check_results(results), OWN_TEST_SPLIT)
    if not _trained_shot_counts(results):
        raise ValueError(
            "plot_accuracy_vs_shots needs results with protocol 'few_shot' and shots; none were given."
        )
    panels = _by_dataset(results)
    several = _several_base_models(results)
    figure, axes = _new_figure(len(panels), panel_width=5.0)
    for axis, (dataset, members) in zip(axes, panels.items()):
        _draw_shots_panel(axis, _panel_title(dataset, members), members, several, "accuracy")
    figure.suptitle("Few-shot accuracy against shots per class")
    return _save(figure, path)


def plot_base_to_new_vs_shots(results: Iterable[dict], path: str | os.PathLike) -> Path:
    """Base, new and H accuracy over the number of shots: a row of three panels per dataset.

    Raises:
        ValueError: when no base-to-new result was trained with a number of shots.
    """
    results = _shot_results(check_results(results), BASE_AND_NEW)
    if not _trained_shot_counts(results):
        raise ValueError("plot_base_to_new_vs_shots needs base-to-new results with shots; none were given.")
    datasets = _by_dataset(results)
    several = _several_base_models(results)
    figure, axes = _new_figure(3 * len(datasets), panel_width=4.5)
    panels = [
        (dataset, members, metric) for dataset, members in datasets.items() for metric in BASE_TO_NEW_METRICS
    ]
    for axis, (dataset, members, metric) in zip(axes, panels):
        title = f"{_panel_title(dataset, members)}: {METRIC_NAMES[metric]}"
        _draw_shots_panel(axis, title, members, several, metric)
    figure.suptitle("Base-to-new accuracy against shots per class (H: harmonic mean)")
    return _save(figure, path)


# ---------------------------------------------------------------------------------------- report


def _markdown_report(results: list[dict], images: dict[str, Path]) -> str:
    parts = ["# Results", "", results_table(results)]
    titles = {
        "base_to_new": "Base-to-new generalisation",
        "accuracy_vs_shots": "Accuracy against shots",
        "base_to_new_vs_shots": "Base-to-new accuracy against shots",
    }
    for key, path in images.items():
        parts += [f"## {titles[key]}", "", f"![{titles[key]}]({path.name})", ""]
    return "\n".join(parts)


def write_report(
    results: Iterable[ExperimentResult | dict], output_dir: str | os.PathLike
) -> dict[str, Path]:
    """Write `results.json`, `results.md` and the charts that apply into `output_dir`.

    `base_to_new.png` is drawn when there are base-to-new results; `accuracy_vs_shots.png` (few-shot)
    and `base_to_new_vs_shots.png` (base-to-new) when the results cover at least two numbers of shots.
    A chart that does not apply is removed if an earlier report left one, so the folder shows only
    this report's.

    Returns:
        Key (`"json"`, `"markdown"`, `"base_to_new"`, ...) -> written path.
    """
    results = check_results(results)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    images: dict[str, Path] = {}
    if any(_tests_on(result, BASE_AND_NEW) for result in results):
        images["base_to_new"] = plot_base_to_new(results, output_dir / REPORT_FILES["base_to_new"])
    if len(_trained_shot_counts(_shot_results(results, OWN_TEST_SPLIT))) > 1:
        images["accuracy_vs_shots"] = plot_accuracy_vs_shots(
            results, output_dir / REPORT_FILES["accuracy_vs_shots"]
        )
    if len(_trained_shot_counts(_shot_results(results, BASE_AND_NEW))) > 1:
        images["base_to_new_vs_shots"] = plot_base_to_new_vs_shots(
            results, output_dir / REPORT_FILES["base_to_new_vs_shots"]
        )
    for key, name in REPORT_FILES.items():
        if key not in images and name.endswith(".png"):
            (output_dir / name).unlink(missing_ok=True)
    paths = {"json": output_dir / REPORT_FILES["json"], "markdown": output_dir / REPORT_FILES["markdown"]}
    atomic_write_text(paths["json"], json.dumps(results, indent=2) + "\n")
    atomic_write_text(paths["markdown"], _markdown_report(results, images))
    return {**paths, **images}
