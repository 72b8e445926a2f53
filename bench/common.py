"""What the benchmark scripts share: CLIP ViT-B/16 at its published dimensions, real class lists, the
device's name, peak memory, timing, and writing `bench/results/<name>.{json,md}`.

Every script in bench/ imports these from here (`sys.path` holds the bench folder when a script runs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch


def class_names(source: str) -> tuple[list[str], list[str]]:
    """(unique labels, prompt texts) of a registry class list; OpenAI's ImageNet names repeat twice."""
    from hf_prompt_clip.data.classnames import (
        imagenet_class_names,
        oxford_flowers_class_names,
        oxford_pets_class_names,
    )

    prompts = list(
        {
            "imagenet": imagenet_class_names,
            "oxford_flowers": oxford_flowers_class_names,
            "oxford_pets": oxford_pets_class_names,
        }[source]()
    )
    labels = [name if prompts.index(name) == i else f"{name} ({i})" for i, name in enumerate(prompts)]
    return labels, prompts


def vit_b16_config(tokenizer):
    from transformers import CLIPConfig

    text = {
        "vocab_size": 49408,
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 16,
    }
    return CLIPConfig(
        text_config=text, vision_config=vision, projection_dim=512, logit_scale_init_value=4.6052
    )


def random_vit_b16(tokenizer_path: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """`(tokenizer, clip)`: the CLIP tokenizer at `tokenizer_path` and a `CLIPModel` at ViT-B/16's published
    dimensions with random weights (seed 0; speed does not depend on the values), in eval mode."""
    from transformers import AutoTokenizer, CLIPModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    clip = CLIPModel(vit_b16_config(tokenizer)).to(device=device, dtype=dtype).eval()
    return tokenizer, clip


def save_random_vit_b16(folder: str | os.PathLike, tokenizer_path: str) -> str:
    """Write a base-model folder laid out like `openai/clip-vit-base-patch16` (config, safetensors weights,
    tokenizer, 224-pixel image processor) holding `random_vit_b16`'s random CLIP, for benchmarks that run
    the package end to end (`base_model=` the returned path). Returns the folder as a string."""
    from transformers import CLIPImageProcessor

    tokenizer, clip = random_vit_b16(tokenizer_path)
    clip.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(crop_size=224, size=224).save_pretrained(folder)
    return os.fspath(folder)


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's architecture and core count."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def release_free_memory() -> None:
    """Give the memory glibc's malloc holds free (kept from earlier steps) back to the system (`malloc_trim`).

    `reset_peak_memory` calls it on a CPU before it resets the peak resident set, so that the peak read
    after the next steps is what they need, not memory the allocator kept from the warm-up (which hid the
    fast path's peak before). The allocator is not otherwise changed, so timings are those of a normal
    process. A no-op where the C library is not glibc.
    """
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def reset_peak_memory(device: str) -> float:
    """Reset the peak-memory counter; returns the current level in MB."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    release_free_memory()
    with contextlib.suppress(OSError):  # resets VmHWM, the peak resident set
        Path("/proc/self/clear_refs").write_text("5")
    return rss_mb("VmRSS")


def peak_memory(device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    return rss_mb("VmHWM")


def token_counts(layout, prefixes: int) -> tuple[int, int]:
    """(positions the fast engine must encode at the least, positions the reference encodes)."""
    shared = layout.shared_prefix_length
    suffix = int((layout.eos_positions + 1 - shared).sum())
    return prefixes * (shared + suffix), prefixes * layout.num_prompts * layout.input_ids.shape[1]


def write_results(name: str, header: str, rows: list[dict], columns: list[str], cells) -> None:
    """Write `bench/results/<name>.json` (header + rows) and `<name>.md` (header + a table of `columns`,
    one line per row from `cells(row) -> list[str]`), and print the table."""
    lines = [header, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps({"header": header, "rows": rows}, indent=1) + "\n")
    (results / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every benchmark script takes: `--tokenizer`, `--device`, `--dtype`."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", default="openai/clip-vit-base-patch16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    return parser


def timed(function: Callable[[], object]) -> tuple[float, float]:
    """`(wall seconds, process CPU seconds)` of one call of `function` (CUDA synchronised after it)."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu
