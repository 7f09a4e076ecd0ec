"""The tweetnlp backend's model files: found in a folder or the Hugging Face cache, downloaded
when missing, and named in the model id by a digest of what they hold."""

from __future__ import annotations

import hashlib
from pathlib import Path

from flows.nlp.backend import BackendUnavailable
from flows.nlp.tweetnlp.settings import TweetnlpConfig

# tweetnlp's own defaults (tweetnlp.text_classification.model.MODEL_LIST); a test keeps them equal.
DEFAULT_MODELS = {
    "sentiment": "cardiffnlp/twitter-roberta-base-sentiment-latest",
    "topic_classification": "cardiffnlp/twitter-roberta-base-dec2021-tweet-topic-multi-all",
}
# What loading needs from a model repository: config, tokenizer files, PyTorch weights (the
# cardiffnlp repositories also hold TensorFlow and Flax weights that would triple the download).
MODEL_FILES = ["*.json", "*.txt", "*.safetensors", "pytorch_model.bin"]


def locate(name: str) -> Path:
    """The local folder of a model: ``name`` itself, or its copy in the Hugging Face cache (fetched
    there when missing).

    Raises:
        BackendUnavailable: no folder, no cached copy, and no download possible (offline).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
    from huggingface_hub.utils import validate_repo_id

    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BackendUnavailable(
                f"{path}: not a model folder (no config.json); point the [tweetnlp] setting at "
                "the folder that `python -m flows download-models --dir DIR` wrote"
            )
        return path
    try:
        validate_repo_id(name)
    except HFValidationError:  # a folder, then, and there is none
        raise BackendUnavailable(
            f"{path.absolute()}: no such model folder (a relative one is taken from the working "
            "directory); point the [tweetnlp] setting at a folder that `python -m flows "
            "download-models --dir DIR` wrote, or at a Hugging Face model id"
        ) from None
    try:
        return Path(snapshot_download(name, allow_patterns=MODEL_FILES, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    try:
        return _download(name)
    except BackendUnavailable as error:
        raise BackendUnavailable(
            f"the tweetnlp backend needs the model {name!r}, which is not in the Hugging Face "
            "cache and cannot be downloaded "
            f"({error}). On a machine with network run `python -m flows "
            "download-models` (fills the Hugging Face cache; copy ~/.cache/huggingface over, or "
            "set HF_HOME) or `python -m flows download-models --dir DIR` and set "
            "[tweetnlp] sentiment_model and topic_model to the folders it prints; or set "
            "nlp_backend = lite, which needs no download"
        ) from None


def download_models(settings: TweetnlpConfig, directory: Path | None = None) -> dict[str, Path]:
    """Fetch the configured models: into the Hugging Face cache, or into ``directory``/<name>.

    Returns:
        The local folder of each task's model.
    """
    names = {"sentiment": settings.sentiment_model, "topic_classification": settings.topic_model}
    if settings.ner_model:
        names["ner"] = settings.ner_model
    folders = {}
    for task, name in names.items():
        name = name or DEFAULT_MODELS[task]
        if Path(name).expanduser().is_dir():
            folders[task] = Path(name).expanduser()
        else:
            target = None if directory is None else Path(directory) / name.replace("/", "--")
            folders[task] = _download(name, target)
    return folders


def _download(name: str, folder: Path | None = None) -> Path:
    """Fetch a model into the Hugging Face cache, or into ``folder``; its local folder.

    Raises:
        BackendUnavailable: offline, an unknown name, or no access; the message says which.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, allow_patterns=MODEL_FILES, local_dir=folder))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as error:  # OSError: network
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise BackendUnavailable(
            f"cannot download {name}: {type(error).__name__} {first_line}".strip()
        ) from None


def model_tag(name: str, folder: Path) -> str:
    """A model's part of the model id: its short name, ``@``, eight hex digits over its files.

    ``cardiffnlp/x``, ``.../cardiffnlp--x`` (a download-models folder) and ``.../x`` are all ``x``.
    """
    return f"{Path(name.rstrip('/')).name.split('--')[-1]}@{_folder_digest(folder)}"


def _folder_digest(folder: Path) -> str:
    """Eight hex digits over a model folder's configuration, tokenizer and weights.

    The same files give the same id whether they sit in the cache or in a copied folder.
    """
    digest = hashlib.sha256()
    for small in sorted([*folder.glob("*.json"), *folder.glob("*.txt")]):  # config, tokenizer
        digest.update(f"{small.name}:".encode() + small.read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("pytorch_model.bin")):
        digest.update(f"{weights.name}:{_weights_sha256(weights)}".encode())
    return digest.hexdigest()[:8]


def _weights_sha256(path: Path) -> str:
    target = path.resolve()
    if path.is_symlink() and target.parent.name == "blobs":
        return target.name  # the Hugging Face cache names a weights blob by its sha256
    with target.open("rb") as weights:
        return hashlib.file_digest(weights, "sha256").hexdigest()
