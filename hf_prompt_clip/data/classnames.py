"""Class-name rules of the benchmarks (docs/data.md) and the class lists shipped with the package.

Room: `data/`.

Every rule is a small pure function from the raw name a source provides (a folder name, a Hub
`ClassLabel` name, a name in a CoOp split file) to the name the prompt sees. Rules are idempotent:
already cleaned names pass through unchanged, so one rule serves raw folders and CoOp split files
alike. A rule returns `None` for a class the protocol drops.
"""

from __future__ import annotations

import html
import re
from functools import cache
from importlib import resources

# Caltech101 folder names in any case (the original folders, mteb/Caltech101's lower-case labels)
CALTECH101_DROPPED = frozenset({"background_google", "faces_easy"})
CALTECH101_RENAMES = {
    "airplanes": "airplane",
    "faces": "face",
    "leopards": "leopard",
    "motorbikes": "motorbike",
}

EUROSAT_NAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}

_YEAR = re.compile(r"^(?P<model>.+?)\s+(?P<year>(?:19|20)\d\d)$")
_FILE_INDEX = re.compile(r"_\d+$")
_LIST_PREFIX = re.compile(r"^(?:\d+\.|n\d{8}-)")


def reference_text_clean(text: str) -> str:
    """OpenAI's CLIP tokenizer clean-up (`basic_clean` + `whitespace_clean` of `simple_tokenizer.py`):
    `ftfy.fix_text`, HTML entities unescaped twice, runs of white space made one space, stripped.

    Example:
        >>> reference_text_clean("rock &amp;amp; roll  ’n’ blues")
        "rock & roll 'n' blues"
    """
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return re.sub(r"\s+", " ", text).strip()


def identity(name: str) -> str:
    """The rule of benchmarks whose raw names are already prompt names (DTD, Food-101, ...)."""
    return name


def clean_caltech101(name: str) -> str | None:
    """Caltech101, in any letter case: drop `BACKGROUND_Google` and `Faces_easy`; `airplanes` ->
    `airplane`, `Faces` -> `face`, `Leopards` -> `leopard`, `Motorbikes` -> `motorbike`."""
    key = name.strip().lower()
    if key in CALTECH101_DROPPED:
        return None
    return CALTECH101_RENAMES.get(key, name)


def clean_oxford_pets(name: str) -> str:
    """OxfordPets: the breed in lower case with underscores.

    Accepts an image file name (`american_bulldog_12.jpg`, as in the original release, whose
    breed is the file name without its index) or a display name (`American Bulldog`).
    """
    stem = name.rsplit("/", 1)[-1]
    stem = re.sub(r"\.(jpe?g|png)$", "", stem, flags=re.IGNORECASE)
    stem = _FILE_INDEX.sub("", stem)
    return stem.strip().lower().replace(" ", "_")


def clean_stanford_cars(name: str) -> str:
    """StanfordCars: the model year moves to the front (`AM General Hummer SUV 2000` -> `2000 AM General Hummer SUV`)."""
    match = _YEAR.match(name.strip())
    return f"{match['year']} {match['model']}" if match else name


def clean_sun397(name: str) -> str:
    """SUN397: `/a/apartment_building/outdoor` -> `outdoor apartment_building` (drop the letter, reverse
    the rest, as CoOp); names without a path (CoOp's, or tanganke/sun397's `apartment building outdoor`)
    pass, and are matched to the class list by their words."""
    if "/" not in name:
        return name
    parts = [part for part in name.split("/") if part]
    if len(parts) > 1 and len(parts[0]) == 1:
        parts = parts[1:]  # the alphabetical directory level
    return " ".join(reversed(parts))


# Words that name one EuroSAT class in the other naming schemes on the Hub (tanganke/eurosat uses the
# task-arithmetic names: "brushland or shrubland", "industrial buildings or commercial buildings", ...)
EUROSAT_KEYWORDS = {
    "annual": "AnnualCrop",
    "forest": "Forest",
    "herbaceous": "HerbaceousVegetation",
    "brushland": "HerbaceousVegetation",
    "shrubland": "HerbaceousVegetation",
    "highway": "Highway",
    "industrial": "Industrial",
    "pasture": "Pasture",
    "permanent": "PermanentCrop",
    "residential": "Residential",
    "river": "River",
    "sea": "SeaLake",
    "lake": "SeaLake",
}


def clean_eurosat(name: str) -> str:
    """EuroSAT: the descriptive names of CoOp (`AnnualCrop` -> `Annual Crop Land`, `SeaLake` -> `Sea or
    Lake`), also from the Hub's other schemes by their distinctive word (`brushland or shrubland` ->
    `Herbaceous Vegetation Land`, `lake or sea` -> `Sea or Lake`)."""
    if name in EUROSAT_NAMES:
        return EUROSAT_NAMES[name]
    words = set(re.findall(r"[a-z]+", name.lower()))
    found = {EUROSAT_KEYWORDS[word] for word in words if word in EUROSAT_KEYWORDS}
    return EUROSAT_NAMES[found.pop()] if len(found) == 1 else name


def clean_ucf101(name: str) -> str:
    """UCF101: CamelCase words joined by `_` (`ApplyEyeMakeup` -> `Apply_Eye_Makeup`)."""
    words = [word for part in name.split("_") for word in re.findall(r"[A-Z][^A-Z]*|[^A-Z]+", part)]
    return "_".join(words)


def strip_list_prefix(name: str) -> str:
    """CUB-200 / Stanford Dogs folder names: drop the index or WordNet prefix (`001.Black_footed_Albatross`,
    `n02085620-Chihuahua`)."""
    return _LIST_PREFIX.sub("", name)


def _read_lines(file_name: str) -> list[str]:
    text = resources.files(__package__).joinpath("classnames", file_name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


@cache
def _imagenet_table() -> tuple[tuple[str, str], ...]:
    """(WordNet id, cleaned name) of the 1000 ImageNet classes in label order."""
    rows = [line.split("\t") for line in _read_lines("imagenet.tsv")[1:]]
    return tuple((wnid, name) for _, wnid, name in rows)


def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet WordNet ids in label order (`n01440764`, ...)."""
    return tuple(wnid for wnid, _ in _imagenet_table())


def imagenet_prompt_names() -> tuple[str, ...]:
    """The cleaned names of OpenAI's ImageNet prompt-engineering list (`tench`, `goldfish`, ...),
    exactly as CLIP and CoOp put them in prompts. Two pairs repeat ("missile", "sunglasses")."""
    return tuple(name for _, name in _imagenet_table())


@cache
def _imagenet_labels() -> dict[str, str]:
    """WordNet id -> unique label: the prompt name, with ` (<wnid>)` added to a repeated name."""
    seen: set[str] = set()
    labels = {}
    for wnid, name in _imagenet_table():
        labels[wnid] = name if name not in seen else f"{name} ({wnid})"
        seen.add(name)
    return labels


def imagenet_class_names() -> tuple[str, ...]:
    """Unique labels of the 1000 ImageNet classes in label order: OpenAI's names, where a repeated
    name gets its WordNet id (`missile (n04008634)`); `imagenet_prompt_names()` gives the prompts."""
    return tuple(_imagenet_labels().values())


@cache
def imagenet_subset_wnids(variant: str) -> tuple[str, ...]:
    """The 200 WordNet ids of ImageNet-A (`variant="a"`) or ImageNet-R (`"r"`), in label order."""
    if variant not in ("a", "r"):
        raise ValueError(f"ImageNet subset variant must be 'a' or 'r', got {variant!r}.")
    return tuple(_read_lines(f"imagenet_{variant}_wnids.txt"))


def imagenet_subset_class_names(variant: str) -> tuple[str, ...]:
    """The ImageNet labels of the 200 classes of ImageNet-A or ImageNet-R, in label order."""
    labels = _imagenet_labels()
    return tuple(labels[wnid] for wnid in imagenet_subset_wnids(variant))


def imagenet_subset_prompt_names(variant: str) -> tuple[str, ...]:
    """OpenAI's prompt names of the 200 classes of ImageNet-A or ImageNet-R, in label order."""
    name_of = dict(_imagenet_table())
    return tuple(name_of[wnid] for wnid in imagenet_subset_wnids(variant))


@cache
def oxford_flowers_class_names() -> tuple[str, ...]:
    """The 102 Oxford Flowers names in label order (`pink primrose`, ...)."""
    return tuple(_read_lines("oxford_flowers.txt"))


@cache
def oxford_pets_class_names() -> tuple[str, ...]:
    """The 37 OxfordPets breeds in label order, cleaned (`abyssinian`, `american_bulldog`, ...)."""
    return tuple(clean_oxford_pets(name) for name in _read_lines("oxford_pets.txt"))


@cache
def caltech101_class_names() -> tuple[str, ...]:
    """CoOp's 100 Caltech101 classes in its label order (ASCII order of the original folders: `face`,
    `leopard`, `motorbike`, `accordion`, `airplane`, ...)."""
    return tuple(_read_lines("caltech101.txt"))


@cache
def dtd_class_names() -> tuple[str, ...]:
    """The 47 DTD textures in label order (`banded`, `blotchy`, ...)."""
    return tuple(_read_lines("dtd.txt"))


@cache
def food101_class_names() -> tuple[str, ...]:
    """The 101 Food-101 dishes in label order (`apple_pie`, `baby_back_ribs`, ...)."""
    return tuple(_read_lines("food101.txt"))


@cache
def eurosat_class_names() -> tuple[str, ...]:
    """CoOp's 10 EuroSAT names in label order (`Annual Crop Land`, ..., `Sea or Lake`)."""
    return tuple(EUROSAT_NAMES.values())


@cache
def sun397_class_names() -> tuple[str, ...]:
    """CoOp's 397 SUN397 names in label order (`abbey`, ..., `outdoor apartment_building`, ...), from the
    dataset's `ClassName.txt` paths."""
    return tuple(clean_sun397(path) for path in _read_lines("sun397.txt"))


@cache
def ucf101_class_names() -> tuple[str, ...]:
    """CoOp's 101 UCF101 names in `classInd.txt` order (`Apply_Eye_Makeup`, ...)."""
    return tuple(clean_ucf101(action) for action in _read_lines("ucf101.txt"))


def name_key(name: str) -> tuple[str, ...]:
    """A spelling-independent key of a class name: its lower-case words, sorted (`Apply_Eye_Makeup`,
    `apply eye makeup` and `ApplyEyeMakeup` -> ('apply', 'eye', 'makeup'); `outdoor apartment_building`
    and `apartment building outdoor` -> ('apartment', 'building', 'outdoor'))."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return tuple(sorted(re.findall(r"[a-z0-9]+", spaced.lower())))
