"""Push a saved adapter folder to the Hugging Face Hub, exactly as it is on disk."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from huggingface_hub import HfApi

from .model_card import CARD_FILE

logger = logging.getLogger(__name__)

ADAPTER_FILES: tuple[str, ...] = ("config.json", "model.safetensors")
"""Files every adapter folder must hold (`save_pretrained` writes them)."""


def check_adapter_folder(folder: str | os.PathLike) -> Path:
    """Return `folder` as a `Path` after checking it holds a saved adapter.

    Raises:
        FileNotFoundError: when the folder, its `config.json` or its `model.safetensors` is missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Adapter folder {str(folder)!r} does not exist.")
    missing = [name for name in ADAPTER_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{str(folder)!r} is not a saved adapter: it lacks {', '.join(missing)}. "
            "Save the model there first with `model.save_pretrained(folder)`."
        )
    return folder


def push_adapter_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
) -> str:
    """Create `repo_id` if needed and upload the adapter folder, every file of it and nothing else.

    Write the model card first (`save_model_card(folder, ...)`) so that the repository gets it.

    Args:
        folder: a folder written by `model.save_pretrained` (config, adapter safetensors, tokenizer,
            image processor, README.md, few-shot record).
        repo_id: `"namespace/name"` on the Hub.
        private: create the repository as private (an existing repository keeps its visibility).
        token: Hub token; `None` uses the usual places (`HF_TOKEN`, `hf auth login`).
        commit_message: defaults to `"Upload <folder name> adapter"`.
        revision: branch to commit to (must exist); defaults to the main branch.

    Returns:
        The URL of the commit.

    Raises:
        FileNotFoundError: when `folder` is not a saved adapter (see `check_adapter_folder`).
    """
    folder = check_adapter_folder(folder)
    if not (folder / CARD_FILE).is_file():
        logger.warning(
            "%s has no %s: the repository will have no model card (see save_model_card).", folder, CARD_FILE
        )
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type="model",
        revision=revision,
        commit_message=commit_message or f"Upload {folder.name} adapter",
    )
    return commit.commit_url
