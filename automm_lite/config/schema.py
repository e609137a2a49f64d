"""Every hyperparameter default in one place: the config's dataclasses, each key with its default, its help and its
bounds (``_key``), its kind and choices in its annotation; and the listings made from them (``iter_fields``,
``keys_table``)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from ..data.augment import AUGMENT_OPS, SYNTHETIC_OPS
from .overrides import (AUTO, _iter_owners, _key, _specs, apply_overrides, canonical_key, fields_table, flatten,
                        spellings)


@dataclass
class HfTextConfig:
    checkpoint_name: str = _key("minilm-l6", "Text encoder: an offline zoo name (`automm-lite zoo`), a local "
                                "Hugging Face folder, a hub name, or `<source>:layers=i,j,...` for a student "
                                "built from chosen layers of a source")
    max_text_len: int = _key(128, "Maximum tokens per row (both sentences of a pair together)", ge=8, le=8192)
    pooling: Literal["mean", "cls"] = _key("mean", "How token states become one row vector")
    freeze_word_embeddings: bool | Literal["auto"] = _key(
        AUTO, "Keep the word-embedding matrix fixed; `auto` freezes it for vocabularies over 100k tokens (most of "
        "me5-small's weights)", auto_aliases=(None,))


IMAGE_TRANSFORMS = Literal["resize_to_square", "resize_shorter_side", "center_crop", "random_resize_crop",
                           "random_horizontal_flip", "random_vertical_flip", "color_jitter", "affine",
                           "trivial_augment", "randaug"]


@dataclass
class TimmImageConfig:
    checkpoint_name: str = _key("efficientnet-lite0", "Image network: an offline zoo name (`efficientnet-lite0`, "
                                "ImageNet weights) or a timm model name (pretrained weights from the hub, online); "
                                "`name:blocks=k` keeps the first k blocks of every stage (a smaller student), "
                                "`teacher:blocks=k` those of the fitted teacher's own network")
    pretrained: bool = _key(True, "Start from the network's pretrained weights; false = random weights (the "
                            "architecture only)")
    image_size: int | Literal["auto"] = _key(AUTO, "Side of the square images the network reads, in pixels; auto = "
                                             "the network's own (224 for efficientnet-lite0)", ge=8, le=2048)
    train_transforms: list[IMAGE_TRANSFORMS] = _key(
        ["resize_shorter_side", "center_crop", "trivial_augment"], "Image transforms while training, in order "
        "(AutoGluon's names), then the network's normalization")
    val_transforms: list[IMAGE_TRANSFORMS] = _key(["resize_shorter_side", "center_crop"],
                                                  "Image transforms for validation and predict")


@dataclass
class TabularMlpConfig:
    hidden_size: int = _key(128, "Width of the numerical/categorical MLP", ge=1)
    num_layers: int = _key(2, "Hidden layers in the numerical/categorical MLP", ge=1, le=16)
    embedding_size: int = _key(16, "Embedding width per categorical column", ge=1)
    dropout: float = _key(0.1, "Dropout in the numerical/categorical MLP", ge=0.0, lt=1.0)


@dataclass
class FusionMlpConfig:
    hidden_sizes: list[int] = _key([128], "Widths of the late-fusion MLP's layers, used when several backbones "
                                   "are present (alias `model.fusion_mlp.hidden_size` for one layer)", ge=1)
    activation: Literal["gelu", "leaky_relu", "relu", "tanh"] = _key("gelu", "Activation in the late-fusion MLP")
    normalization: Literal["layer_norm", "batch_norm", "none"] = _key(
        "layer_norm", "Normalization after each late-fusion layer's activation")
    dropout: float = _key(0.1, "Dropout between the late-fusion layers and before the output layer (alias "
                          "`model.fusion_mlp.drop_rate`)", ge=0.0, lt=1.0)
    adapt_in_features: Literal["none", "max", "min"] = _key(
        "none", "Project every backbone's features to the widest (`max`) or narrowest (`min`) backbone's width "
        "before they are joined; none = join them as they are")
    weight: float = _key(0.0, "With several backbones, give each its own output layer and add this weight x its "
                         "task loss while training (AutoGluon's per-backbone losses); 0 = only the fused output",
                         ge=0.0)


@dataclass
class ClassicalConfig:
    enabled: bool | Literal["auto"] = _key(
        AUTO, "Fit a classical model beside the network and keep the better of the two on the tuning rows, or "
        "their weighted blend; auto = yes unless `model.names` names the backbones or a teacher is passed (the "
        "student is the network being distilled)")
    kinds: list[Literal["linear", "gbm"]] = _key(
        ["linear", "gbm"], "Classical models tried (the better on the tuning rows is kept): linear = TF-IDF, "
        "scaled numbers, one-hot categories and small pixels into a logistic (ridge) regression; gbm = LightGBM "
        "gradient-boosted trees on the numbers, categories and a few SVD axes of the text (data with numbers or "
        "categories only)")
    ensemble: Literal["weighted", "best"] = _key(
        "weighted", "weighted = blend the network's and the classical model's predictions with the weight best on "
        "the tuning rows (0 or 1 keeps one of them); best = keep the better one")


@dataclass
class ModelConfig:
    names: list[str] = _key([], "Backbones to use (`hf_text`, `timm_image`, `tabular_mlp`); empty = chosen from "
                            "the column kinds")
    classical: ClassicalConfig = field(default_factory=ClassicalConfig)
    hf_text: HfTextConfig = field(default_factory=HfTextConfig)
    timm_image: TimmImageConfig = field(default_factory=TimmImageConfig)
    tabular_mlp: TabularMlpConfig = field(default_factory=TabularMlpConfig)
    fusion_mlp: FusionMlpConfig = field(default_factory=FusionMlpConfig)


@dataclass
class DataConfig:
    numerical_scaler: Literal["standard", "none"] = _key("standard", "Scaling of numerical feature columns")
    numerical_label_preprocessing: Literal["standardscaler", "none"] = _key(
        "standardscaler", "Scaling of a regression label while training")
    augment_copies: int = _key(0, "Extra augmented copies of each training row (text columns changed, label "
                               "kept); with a teacher, the teacher labels the copies too", ge=0, le=32)
    augment_ops: list[Literal[AUGMENT_OPS]] = _key(list(AUGMENT_OPS), "Augmentations the copies cycle through")
    augment_prob: float = _key(0.15, "Share of words each augmentation touches", ge=0.0, le=0.9)


PEFT_METHODS = Literal["none", "lora", "lora_bias", "lora_norm", "ia3", "ia3_bias", "ia3_norm", "bit_fit",
                       "norm_fit"]


@dataclass
class LoraConfig:
    r: int = _key(8, "LoRA rank (`optimization.peft=lora...`)", ge=1, le=1024)
    alpha: int = _key(8, "LoRA scaling numerator (the update is scaled by alpha / r)", ge=1)
    dropout: float = _key(0.0, "Dropout on the LoRA path", ge=0.0, lt=1.0)
    target_modules: list[str] = _key(["query", "value"], "Names of the text encoder's Linear layers that get "
                                     "LoRA (or IA3) adapters (alias `optimization.lora.filter`)")


@dataclass
class OptimizationConfig:
    learning_rate: float | Literal["auto"] = _key(
        AUTO, "Peak learning rate of the pretrained weights (alias `optim.lr`); auto = chosen from the backbones "
        "and the number of training rows (manual: Defaults that fit the data)", gt=0.0, le=1.0)
    lr_choice: Literal["auto", "two_stages", "layerwise_decay", "none"] = _key(
        AUTO, "How learning rates differ inside the model: two_stages = new layers (output, fusion and tabular "
        "MLPs) at learning_rate x lr_mult; layerwise_decay = each pretrained layer at lr_decay^(depth from the "
        "top) of the rate above it, new layers at learning_rate; none = one rate; auto = two_stages")
    lr_decay: float = _key(0.9, "Per-layer decay of the learning rate with `lr_choice=layerwise_decay`", gt=0.0,
                           le=1.0)
    lr_mult: float | Literal["auto"] = _key(
        AUTO, "Learning-rate multiplier of the new layers with `lr_choice=two_stages`; auto = chosen with the "
        "learning rate", gt=0.0)
    peft: PEFT_METHODS = _key(
        "none", "Parameter-efficient fine-tuning of the pretrained backbones (alias `optim.peft`): lora / ia3 = "
        "adapters on the text encoder's `optimization.lora.target_modules` (needs a text column; merged into the "
        "weights after the fit), image networks take none and stay frozen; `_bias` / `_norm` also train biases / "
        "norm layers and biases; bit_fit = biases only; norm_fit = norm layers and biases; new layers (output, "
        "fusion and tabular MLPs, random-weight networks) always train")
    lora: LoraConfig = field(default_factory=LoraConfig)
    weight_decay: float = _key(1e-3, "AdamW weight decay (not applied to biases and LayerNorms)", ge=0.0)
    optim_type: Literal["adamw", "sgd"] = _key("adamw", "Optimizer")
    lr_schedule: Literal["cosine_decay", "linear_decay", "constant"] = _key("cosine_decay",
                                                                             "Learning-rate decay after warm-up")
    warmup_steps: float = _key(0.1, "Warm-up length: a fraction of all steps if < 1, else a step count", ge=0.0)
    max_epochs: int | Literal["auto"] = _key(AUTO, "Maximum passes over the training data; auto = enough for "
                                             "the rule's optimizer steps (manual: Defaults that fit the data)",
                                             ge=1)
    max_steps: int = _key(-1, "Stop after this many optimizer steps (-1 = no limit)", ge=-1)
    patience: int = _key(10, "Early stopping: validations without improvement before stopping", ge=1)
    val_check_interval: float = _key(0.5, "Validate every this fraction of an epoch (<= 1) or every N batches",
                                     gt=0.0)
    top_k: int = _key(3, "Best validations whose weights are kept (in CPU memory) for averaging", ge=1, le=20)
    top_k_average_method: Literal["greedy_soup", "uniform_soup", "best"] = _key(
        "greedy_soup", "How the kept checkpoints become one model")
    gradient_clip_val: float = _key(1.0, "Clip the gradient norm to this (0 = off)", ge=0.0)
    loss_function: Literal["auto", "cross_entropy", "mse", "mae", "huber"] = _key(
        AUTO, "Task loss (alias `optim.loss_func`); auto = cross entropy or MSE")
    label_smoothing: float = _key(0.0, "Label smoothing for cross entropy", ge=0.0, le=0.5)


STRATEGIES = Literal["auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "ddp_find_unused_parameters_true",
                     "ddp_spawn_find_unused_parameters_true", "ddp_fork_find_unused_parameters_true"]


@dataclass
class EnvConfig:
    batch_size: int | Literal["auto"] = _key(
        AUTO, "Rows per optimizer step; reached by gradient accumulation when larger than `per_gpu_batch_size` x "
        "devices (a multiple of that, else a warning); auto = 8 to 32 by the number of training rows", ge=1)
    per_gpu_batch_size: int | Literal["auto"] = _key(AUTO, "Rows per forward pass on one device; auto = the "
                                                     "largest divisor of batch_size up to 32", ge=1)
    eval_batch_size_ratio: int = _key(4, "Inference batch = per_gpu_batch_size x this (alias "
                                      "`env.inference_batch_size_ratio`)", ge=1)
    inference_batch_tokens: int | Literal["auto"] = _key(
        AUTO, "Most tokens (rows x longest row) in one inference batch; auto = 2048 on a CPU (batches that stay in "
        "its caches run faster), no limit on a GPU; 0 = no limit", ge=0, auto_aliases=(None,))
    precision: Literal["32", "bf16-mixed", "16-mixed"] = _key(
        "32", "Training precision: 32, bf16-mixed (CPU with bf16 or GPU), 16-mixed (GPU; on a CPU falls back with a "
        "warning)")
    inference_precision: Literal["32", "bf16", "int8"] = _key(
        "32", "Inference precision: 32; bf16 = the text encoder in bfloat16 where the CPU/GPU has native bf16 (else "
        "32, with a warning); int8 = dynamic int8 Linear layers (CPU)")
    inference_backend: Literal["torch", "onnx"] = _key(
        "torch", "Inference engine: torch, or onnx = the exported model on onnxruntime (pip install "
        "'automm_lite[onnx]')")
    inference_compile: bool = _key(False, "torch.compile the text encoder for inference (torch backend, precision 32 "
                                   "or bf16): fused kernels, compiled once when inference is set up (seconds to a "
                                   "minute); needs a C++ compiler on a CPU, else runs uncompiled with a warning")
    num_gpus: int | Literal["auto"] = _key(AUTO, "GPUs per node: auto (or -1) = all the GPUs torch sees (none: the "
                                           "CPU); 0 = CPU; n = n GPUs (more than exist is an error)", ge=0,
                                           auto_aliases=(-1,))
    accelerator: Literal["auto", "cpu", "gpu"] = _key(AUTO, "Where to train and predict: auto = a GPU if "
                                                      "`env.num_gpus` allows one and torch sees one, else the CPU")
    num_processes: int = _key(1, "Training processes on the CPU (Lightning's devices on the CPU accelerator, gloo "
                              "backend): 2 or more train with DDP, each process on a shard of the rows", ge=1)
    num_nodes: int = _key(1, "Machines that train together (launched by torchrun or SLURM, manual: Several "
                          "processes, GPUs and nodes)", ge=1)
    num_workers: int = _key(0, "DataLoader worker processes for training (rows are tokenized up front)", ge=0)
    num_workers_evaluation: int = _key(0, "DataLoader workers for inference (alias `env.num_workers_inference`)",
                                       ge=0)
    num_threads: int | Literal["auto"] = _key(AUTO, "CPU threads for torch; auto (or 0) = torch's default", ge=1,
                                              auto_aliases=(0,))
    keep_freed_memory: bool = _key(True, "On a CPU with glibc (Linux), keep memory that torch frees in the process "
                                   "for reuse, so that each batch does not page-fault its activations in again "
                                   "(faster float32 predict: manual, Fast inference); process-wide from the first "
                                   "fit/predict that asks, resident memory stays near its peak")
    deterministic: bool = _key(False, "Ask torch for deterministic algorithms (slower on GPU)")
    resume_points: bool = _key(True, "Write the training state at the end of every epoch to the fit's work folder "
                               "(removed when the fit ends), so that `fit(..., resume=True)` or "
                               "`Predictor.load(path, resume=True)` continues a fit that was killed")
    strategy: STRATEGIES = _key(
        AUTO, "Lightning strategy for several devices or nodes: auto = ddp under torchrun or SLURM, ddp_fork for CPU "
        "processes, and for GPUs ddp_notebook in a notebook, ddp in a script (which re-runs the command line for "
        "each extra process); *_find_unused_parameters_true for models with parameters a step may not use")


@dataclass
class DistillerConfig:
    recipe: Literal["auto", "autogluon", "none"] = _key(
        AUTO, "Who chooses the distillation terms and the student's budget: auto = the library, from what the fit "
        "has (manual, Knowledge distillation: the recipe rules); autogluon = AutoGluon's terms and defaults exactly; "
        "none = the key defaults as they are. Keys you pass always win")
    temperature: float = _key(5.0, "Softens teacher and student logits in the soft-label term", gt=0.0)
    hard_label_weight: float = _key(0.1, "Weight of the task loss on the gold labels", ge=0.0)
    soft_label_weight: float = _key(1.0, "Weight of the soft-label term (teacher probabilities)", ge=0.0)
    soft_label_loss_type: Literal["auto", "cross_entropy", "mse"] = _key(
        AUTO, "Soft-label loss; auto (or empty) = cross entropy (classification) or MSE (regression)",
        auto_aliases=("",))
    output_feature_loss_weight: float = _key(0.01, "Weight of the pooled-feature matching term", ge=0.0)
    output_feature_loss_type: Literal["mse", "cosine"] = _key("mse", "Pooled-feature loss")
    softmax_regression_weight: float = _key(0.0, "Weight of softmax regression (student feature through the "
                                            "teacher's head)", ge=0.0)
    softmax_regression_loss_type: Literal["auto", "mse", "cross_entropy"] = _key(
        "mse", "Softmax-regression loss; auto (or empty) = cross entropy (classification) or MSE (regression)",
        auto_aliases=("",))
    rkd_distance_loss_weight: float = _key(0.0, "Weight of the relational (pairwise distance) term", ge=0.0)
    rkd_angle_loss_weight: float = _key(0.0, "Weight of the relational (triplet angle) term", ge=0.0)
    hidden_state_loss_weight: float = _key(0.0, "Weight of the intermediate hidden-state term (averaged over the "
                                           "layer mapping; same tokenizer only, else skipped)", ge=0.0)
    hidden_state_loss_type: Literal["mse", "cosine"] = _key("cosine", "Hidden-state loss")
    attention_loss_weight: float = _key(0.0, "Weight of the attention-map term (same tokenizer only)", ge=0.0)
    attention_loss_type: Literal["kl", "mse"] = _key("kl", "Attention loss")
    embedding_loss_weight: float = _key(0.0, "Weight of the embedding-layer output term", ge=0.0)
    feature_map_loss_weight: float = _key(0.0, "Weight of the image feature-map term (averaged over the matched "
                                          "levels; both models read the same image columns, else skipped)", ge=0.0)
    feature_map_loss_type: Literal["mse", "attention"] = _key(
        "mse", "Feature-map loss: mse (a 1x1-convolution matcher where channels differ) or attention transfer")
    feature_map_levels: int = _key(2, "How many of the deepest feature levels (timm's feature_info) are matched, "
                                   "the deepest of the student with the deepest of the teacher", ge=1, le=8)
    layer_mapping: str = _key("uniform", "Student->teacher layers for the hidden/attention terms: 'uniform', "
                              "'last', or explicit 'student:teacher' pairs such as '1:2,2:4,3:6'")
    t2_scaling: bool = _key(False, "Multiply the soft-label term by temperature^2 (Hinton et al.)")
    synthetic_rows: int = _key(0, "Made-up rows per training row that only the teacher labels (no gold label): "
                               "the student learns the teacher's view of inputs the data does not have", ge=0,
                               le=16)
    synthetic_ops: list[Literal[SYNTHETIC_OPS]] = _key(
        list(SYNTHETIC_OPS), "How synthetic rows are made, cycling through the list: mix = the first half of "
        "one row's words and the second half of another's in every text column, a box of another row's image pasted "
        "in (CutMix) in every image column; swap = one text or image column replaced by another row's (rows with "
        "two or more such columns, such as sentence pairs; else mix); span = a shorter stretch of each text, a crop "
        "of each image")
    teacher_check: bool = _key(
        True, "With recipe auto: before training, score the teacher on the tuning rows against a linear model "
        "fitted on the gold labels; a teacher not above it is not distilled, and the student trains on the same "
        "rows and steps with gold labels instead (the equal-compute control)")
    teacher_precision: Literal["32", "bf16"] = _key(
        "32", "Precision of the one teacher pass over the training rows: 32, or bf16 autocast where the CPU/GPU has "
        "native bf16 (a big teacher's pass runs faster; else 32 with a warning)")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    distiller: DistillerConfig = field(default_factory=DistillerConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        """Rebuild a config saved with ``to_dict`` (unknown keys and wrong kinds are an error, as everywhere; the
        value bounds, which guard a new fit, are not applied: a saved predictor loads whatever its version
        allowed)."""
        return apply_overrides(cls(), flatten(values), allow_distiller=True, bounds=False)


def iter_fields(config=None):
    """Yield ``(dotted_key, dataclass_field, current_value)`` for every leaf key of a config (the defaults' if
    ``config`` is None)."""
    for key, f, owner in _iter_owners(Config() if config is None else config):
        yield key, f, getattr(owner, f.name)


def valid_keys() -> list[str]:
    """Every accepted dotted key: canonical names, their ``optim.*`` spellings and the aliases."""
    return spellings(key for key, _, _ in iter_fields())


def keys_table() -> str:
    """A Markdown table of every key: its default, what it accepts and what it means (printed by
    ``automm-lite keys``; the manual's hyperparameter page is made from it)."""
    return fields_table(Config())


def value_kind(key: str) -> str | None:
    """What the dotted ``key`` holds: ``bool``, ``int``, ``float``, ``str``, ``list`` or ``int_list``; None for a key
    that does not exist."""
    key = canonical_key(key)
    for name, f, owner in _iter_owners(Config()):
        if name == key:
            return _specs(type(owner))[f.name].kind
    return None
