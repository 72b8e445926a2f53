"""Push a saved adapter folder to the Hugging Face Hub, exactly as it is on disk.

Room: `serialization/`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from huggingface_hub import HfApi, ModelCard
from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..utils.atomic import atomic_write_text
from .card import CARD_FILE

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


#: A repository id to show in advice.
EXAMPLE_REPO_ID = "me/coop-vitb16-eurosat"


def repo_id_problem(repo_id: str) -> str | None:
    """Why `repo_id` is not a valid Hub repository id (huggingface_hub's own rules,
    `validate_repo_id`), as a sentence naming the id and a valid example; `None` when it is valid.

    Example:
        >>> repo_id_problem("me/coop-vitb16-eurosat") is None
        True
        >>> repo_id_problem("-/x")
        "'-/x' is not a valid Hub repository id: repo id must use alphanumeric chars, ..."
    """
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        # the validator's rule without its echo of the id (": '<id>'.") or its hint about repo_type
        rule = str(error).split(f": '{repo_id}'", 1)[0].rstrip(". ")
        rule = rule[:1].lower() + rule[1:]
        parts = repo_id.split("/")
        for role, part in zip(("namespace", "name") if len(parts) == 2 else ("name",), parts):
            if part and (part[0] in "-." or part[-1] in "-."):  # the rule that bites, pointed out
                edge = f"starts with {part[0]!r}" if part[0] in "-." else f"ends with {part[-1]!r}"
                rule += f"; here the {role} {part!r} {edge}"
                break
        return (
            f"{repo_id!r} is not a valid Hub repository id: {rule}. Give namespace/name, e.g. "
            f"{EXAMPLE_REPO_ID}."
        )
    return None


class PushAccessError(PermissionError):
    """The Hub cannot be written as asked (offline, not logged in, read-only token, foreign namespace)."""


def check_push_access(repo_id: str, token: str | None = None) -> str:
    """Check, before anything trains, that `repo_id` can be pushed to: the Hub answers, the token is
    valid and may write, and the namespace is the user's or one of their organisations'. Nothing is
    created. Returns the user name.

    Raises:
        ValueError: when `repo_id` is not a valid repository id (`repo_id_problem`).
        PushAccessError: naming what is missing and how to fix it.

    Example:
        >>> check_push_access("me/coop-vitb16-eurosat")
        'me'
    """
    problem = repo_id_problem(repo_id)
    if problem is not None:
        raise ValueError(problem)
    fix = (
        "Log in with `hf auth login` (or set HF_TOKEN to a token with write access), make sure the Hub "
        "can be reached (HF_HUB_OFFLINE unset), or drop --push-to-hub and push later with "
        f"`hf-prompt-clip push <adapter folder> {repo_id}`."
    )
    try:
        info = HfApi(token=token).whoami()
    except Exception as error:  # offline mode, no token, a network error, an invalid token
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise PushAccessError(
            f"Cannot push to {repo_id!r}: the Hub did not confirm a login ({reason}). {fix}"
        ) from error
    user = info.get("name", "")
    namespace = repo_id.split("/")[0] if "/" in repo_id else user
    allowed = {user, *(org.get("name") for org in info.get("orgs", []))}
    if namespace not in allowed:
        raise PushAccessError(
            f"Cannot push to {repo_id!r}: {user!r} may write to {sorted(filter(None, allowed))}, not to "
            f"{namespace!r}. Use one of those namespaces, or log in as a member of {namespace!r}."
        )
    role = info.get("auth", {}).get("accessToken", {}).get("role")
    if role == "read":
        raise PushAccessError(f"Cannot push to {repo_id!r}: the token is read-only. {fix}")
    return user


def push_adapter_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
    commit_description: str | None = None,
    create_pr: bool = False,
    tags: list[str] | None = None,
) -> str:
    """Create `repo_id` if needed and upload the adapter folder, every file of it and nothing else.

    Write the model card first (`save_model_card(folder, ...)`) so that the repository gets it.

    Args:
        folder: a folder written by `model.save_pretrained` (config, adapter safetensors, tokenizer,
            image processor, loader module, README.md, records).
        repo_id: `"namespace/name"` on the Hub.
        private: create the repository as private (an existing repository keeps its visibility).
        token: Hub token; `None` uses the usual places (`HF_TOKEN`, `hf auth login`).
        commit_message: defaults to `"Upload <folder name> adapter"`.
        revision: the branch to commit to, created from the main branch if it does not exist, as
            transformers does; defaults to the main branch.
        commit_description: the commit's (or pull request's) description.
        create_pr: open a pull request with the upload instead of committing to `revision`.
        tags: tags added to the card's metadata (beside the method's own).

    Returns:
        The URL of the commit (of the pull request with `create_pr`).

    Raises:
        FileNotFoundError: when `folder` is not a saved adapter (see `check_adapter_folder`).
    """
    folder = check_adapter_folder(folder)
    card = folder / CARD_FILE
    if not card.is_file():
        logger.warning(
            "%s has no %s: the repository will have no model card (see save_model_card).", folder, CARD_FILE
        )
    elif tags:
        model_card = ModelCard.load(card)
        model_card.data.tags = list(dict.fromkeys([*(model_card.data.tags or []), *tags]))
        atomic_write_text(card, str(model_card))
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision is not None and not create_pr:
        api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type="model",
        revision=revision,
        commit_message=commit_message or f"Upload {folder.name} adapter",
        commit_description=commit_description,
        create_pr=create_pr,
    )
    return (getattr(commit, "pr_url", None) if create_pr else None) or commit.commit_url
