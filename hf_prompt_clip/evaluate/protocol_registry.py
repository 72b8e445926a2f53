"""The papers' evaluation protocols as data: what each trains on, what it tests on, and how it evaluates.

Room: evaluation (reports and cards import it; the experiment, the CLI's `--protocol` choices and the
checks read it). Nothing else compares protocol names: a protocol is one `Protocol` entry, and adding one
(`register_protocol`) adds it to the command line, runs, reports and cards.

| key | title | trains on | tests on | classes change | targets |
|---|---|---|---|---|---|
| `few_shot` | few-shot | all classes | its own test split | no | no |
| `base2new` | base-to-new | the base classes | base and new classes of its test split | yes | no |
| `cross_dataset` | cross-dataset | all classes | the targets' test splits | yes | yes |
| `domain_generalization` | domain generalisation | all classes | the targets' test splits | yes | yes |
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..data import (
    BenchmarkSpec,
    Source,
    base_new_counts,
    collate_fn,
    eval_transform,
    get_benchmark,
    load_benchmark,
    with_image_transform,
)
from ..utils.settings import SettingError
from .protocols import evaluate_accuracy, evaluate_base_to_new, evaluate_targets
from .reference_numbers import BASE_TO_NEW_DATASETS

if TYPE_CHECKING:
    from accelerate import Accelerator

    from ..caching.feature_cache import ImageFeatureCache
    from ..modeling.model import PromptCLIPPreTrainedModel

#: What a protocol trains on (`Protocol.trains_on`).
ALL_CLASSES = "all"
BASE_CLASSES = "base"
#: What a protocol tests on (`Protocol.tests_on`).
OWN_TEST_SPLIT = "own"
BASE_AND_NEW = "base_and_new"
TARGETS = "targets"


@dataclass
class ProtocolInputs:
    """What a protocol's `evaluate` reads: the training benchmark and its source, the targets, and how to
    evaluate (batch size, accelerator, feature cache, data-loading workers).

    `test_set(benchmark)` loads a benchmark's test split through the model's test transform (`benchmark`
    defaults to the training one, read from its own source); every set loaded is kept in `loaded`, so the
    caller can say how many images were evaluated.
    """

    spec: BenchmarkSpec
    source: Source | None = None
    revision: str | None = None
    targets: Sequence[str] = ()
    batch_size: int = 64
    accelerator: Accelerator | None = None
    feature_cache: ImageFeatureCache | None = None
    num_workers: int = 0
    image_processor: Any = None
    loaded: list = field(default_factory=list)

    def test_set(self, benchmark: str | BenchmarkSpec | None = None):
        """The test split of `benchmark` (default: the training benchmark, from its source and revision)."""
        own = benchmark is None
        spec = self.spec if own else get_benchmark(benchmark)
        data = load_benchmark(
            spec, "test", source=self.source if own else None, revision=self.revision if own else None
        )
        self.loaded.append(data)
        return with_image_transform(data, eval_transform(self.image_processor))

    def options(self) -> dict[str, Any]:
        """The keyword arguments every `evaluate_*` function takes beyond the model and the data."""
        return {"feature_cache": self.feature_cache, "num_workers": self.num_workers}


Evaluate = Callable[["PromptCLIPPreTrainedModel", ProtocolInputs], dict[str, float]]


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol.

    Attributes:
        key: its name in results, records and on the command line (`"base2new"`).
        title: its name in tables, charts and cards (`"base-to-new"`).
        trains_on: `ALL_CLASSES` or `BASE_CLASSES` (the first half of the classes, `base_new_counts`):
            a protocol that trains on the base classes runs only on benchmarks that define them.
        tests_on: `OWN_TEST_SPLIT` (the training benchmark's test split), `BASE_AND_NEW` (its base and
            new classes, each among its own) or `TARGETS` (the test splits of other benchmarks).
        classes_must_change: it classifies other classes than the trained ones, so a method that learns
            parameters per training class cannot run it.
        needs_targets: the run names target benchmarks (`targets`).
        evaluate: `(model, ProtocolInputs) -> metrics` (percent).
        metrics: the metric keys it reports (`None`: one per target).
        paper_datasets: the training datasets of the papers' tables for it (CoOp's 11 datasets; ImageNet for
            the transfer protocols), what `hf-prompt-clip reproduce` runs when a paper lists no dataset.
        paper_targets: the test datasets of those tables, for a protocol with targets.

    Example:
        >>> get_protocol("base2new").training_classes(["a", "b", "c"])
        ['a', 'b']
    """

    key: str
    title: str
    trains_on: str
    tests_on: str
    classes_must_change: bool
    needs_targets: bool
    evaluate: Evaluate = field(compare=False, repr=False)
    metrics: tuple[str, ...] | None = None
    paper_datasets: tuple[str, ...] = ()
    paper_targets: tuple[str, ...] = ()

    @property
    def tests_training_data(self) -> bool:
        """Whether it tests on the benchmark it trains on (not on targets)."""
        return self.tests_on != TARGETS

    @property
    def trains_on_base(self) -> bool:
        """Whether it trains on the base classes only."""
        return self.trains_on == BASE_CLASSES

    def training_classes(self, names: Sequence[str]) -> list[str]:
        """The classes it trains on, of a benchmark's class list."""
        return list(names[: base_new_counts(len(names))[0]] if self.trains_on_base else names)

    def problem(self, spec: BenchmarkSpec, targets: Sequence[str] = ()) -> str | None:
        """Why it cannot run on `spec` with `targets` (a message naming the settings), or `None`."""
        if self.needs_targets and not targets:
            return f"protocol {self.key!r} needs target datasets ({{targets=['...']}})."
        if self.trains_on_base and not spec.base_new:
            return f"The {self.title} protocol is not defined for {spec.key!r}; use {{protocol='few_shot'}}."
        return None


def _few_shot(model, inputs: ProtocolInputs) -> dict[str, float]:
    own = inputs.test_set()
    return {
        "accuracy": evaluate_accuracy(
            model, own, collate_fn, inputs.spec, inputs.batch_size, inputs.accelerator, **inputs.options()
        )
    }


def _base_to_new(model, inputs: ProtocolInputs) -> dict[str, float]:
    own = inputs.test_set()
    return evaluate_base_to_new(
        model, own, collate_fn, inputs.spec, inputs.batch_size, inputs.accelerator, **inputs.options()
    )


def _on_targets(model, inputs: ProtocolInputs) -> dict[str, float]:
    sets = {key: (inputs.test_set(key), get_benchmark(key)) for key in inputs.targets}
    return evaluate_targets(
        model, sets, collate_fn, inputs.batch_size, inputs.accelerator, **inputs.options()
    )


_PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(protocol: Protocol, *, replace: bool = False) -> Protocol:
    """Add `protocol` (after the others: tables list protocols in registration order).

    Raises:
        ValueError: a protocol of that key exists (unless `replace`), or its `trains_on` / `tests_on` is
            not one of the values above.
    """
    if protocol.trains_on not in (ALL_CLASSES, BASE_CLASSES):
        raise ValueError(
            f"trains_on must be {ALL_CLASSES!r} or {BASE_CLASSES!r}, got {protocol.trains_on!r}."
        )
    if protocol.tests_on not in (OWN_TEST_SPLIT, BASE_AND_NEW, TARGETS):
        raise ValueError(
            f"tests_on must be one of {(OWN_TEST_SPLIT, BASE_AND_NEW, TARGETS)}, got {protocol.tests_on!r}."
        )
    if protocol.key in _PROTOCOLS and not replace:
        raise ValueError(
            f"A protocol {protocol.key!r} is registered already; pass replace=True to replace it."
        )
    _PROTOCOLS[protocol.key] = protocol
    return protocol


def unregister_protocol(key: str) -> Protocol:
    """Remove the protocol `key` (a test's own); returns it."""
    return _PROTOCOLS.pop(key)


def protocol_keys() -> tuple[str, ...]:
    """The registered protocol keys, in table order."""
    return tuple(_PROTOCOLS)


def protocols() -> Iterator[Protocol]:
    """The registered protocols, in table order."""
    return iter(tuple(_PROTOCOLS.values()))


def get_protocol(key: str) -> Protocol:
    """The protocol `key`.

    Raises:
        SettingError: no such protocol, naming the registered ones.
    """
    try:
        return _PROTOCOLS[key]
    except (KeyError, TypeError):
        raise SettingError(
            f"{{protocol}} must be one of {protocol_keys()}, got {key!r}; e.g. {{protocol='few_shot'}}."
        ) from None


def default_protocol(spec: BenchmarkSpec) -> str:
    """The protocol of an adapter evaluated without one named nor recorded: base-to-new where the benchmark
    defines base and new classes, else few-shot."""
    return "base2new" if spec.base_new else "few_shot"


#: The 11 datasets of CoOp's benchmark suite, in the papers' table order; ImageNet's shifted variants.
PAPER_SUITE = BASE_TO_NEW_DATASETS
IMAGENET_VARIANTS = ("imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r")

for _protocol in (
    Protocol("few_shot", "few-shot", ALL_CLASSES, OWN_TEST_SPLIT, False, False, _few_shot, ("accuracy",),
             paper_datasets=PAPER_SUITE),
    Protocol("base2new", "base-to-new", BASE_CLASSES, BASE_AND_NEW, True, False, _base_to_new, ("base", "new", "hm"),
             paper_datasets=PAPER_SUITE),
    Protocol("cross_dataset", "cross-dataset", ALL_CLASSES, TARGETS, True, True, _on_targets,
             paper_datasets=("imagenet",), paper_targets=PAPER_SUITE),
    Protocol("domain_generalization", "domain generalisation", ALL_CLASSES, TARGETS, True, True, _on_targets,
             paper_datasets=("imagenet",), paper_targets=("imagenet", *IMAGENET_VARIANTS)),
):  # fmt: skip
    register_protocol(_protocol)
