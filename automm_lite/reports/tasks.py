"""Named distillation tasks on the bundled real data: splits, teacher and student settings, budgets."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DistillTask:
    """Everything ``run_distillation_table`` needs for one task."""

    name: str
    label: str
    train: object
    tuning: object
    test_sets: dict
    teacher_hyperparameters: dict
    student_hyperparameters: dict
    eval_metric: str = "accuracy"
    unlabeled: object = None
    notes: list = field(default_factory=list)


BBC_SHORT_MODELS = "teacher: minilm-l6 fine-tuned; student: 1 layer (minilm-l6 layer 0), same tokenizer"
# The tables compare networks, at the budget they were measured with: 32 rows a step, one learning rate, no
# classical model beside the network (docs/guide/defaults.md).
AS_MEASURED = {"env.batch_size": 32, "optimization.lr_choice": "none", "model.classical.enabled": False}


def _bbc_short_models(epochs: int) -> tuple[dict, dict]:
    """Teacher and student hyperparameters of both BBC-short tasks (40 tokens, ``epochs`` each)."""
    common = {**AS_MEASURED, "model.hf_text.max_text_len": 40, "optimization.max_epochs": epochs}
    return ({**common, "model.hf_text.checkpoint_name": "minilm-l6", "optim.lr": 1e-4},
            {**common, "model.hf_text.checkpoint_name": "minilm-l6:layers=0", "optim.lr": 3e-4})


def bbc_short(budget: str = "full", seed: int = 0) -> DistillTask:
    """BBC News topics from the first 24 words: a minilm-l6 teacher, a 1-layer student from its layer 0."""
    from sklearn.model_selection import train_test_split

    from ..datasets import load_bbc_news

    train, test = load_bbc_news(short=True, max_words=24, seed=seed)
    if budget == "small":
        train, test = train.sample(400, random_state=seed), test.sample(200, random_state=seed)
    train, tuning = train_test_split(train, test_size=0.2, stratify=train["label"], random_state=seed)
    teacher_hyperparameters, student_hyperparameters = _bbc_short_models(epochs=2 if budget == "small" else 6)
    return DistillTask("bbc-short", "label", train, tuning, {"test": test}, teacher_hyperparameters,
                       student_hyperparameters, notes=[BBC_SHORT_MODELS])


def bbc_short_unlabeled(budget: str = "full", seed: int = 0) -> DistillTask:
    """BBC-short with few labels: 320 labelled articles, the rest of the training split without labels.

    The common case for distillation: labels are scarce, text is not. Teacher and students train on the same
    labelled rows; only the teacher-labelled transfer rows are distillation's own.
    """
    from sklearn.model_selection import train_test_split

    from ..datasets import load_bbc_news

    train, test = load_bbc_news(short=True, max_words=24, seed=seed)
    n_labeled = 120 if budget == "small" else 320
    if budget == "small":
        test = test.sample(200, random_state=seed)
    labeled, unlabeled = train_test_split(train, train_size=n_labeled, stratify=train["label"], random_state=seed)
    train, tuning = train_test_split(labeled, test_size=0.2, stratify=labeled["label"], random_state=seed)
    teacher_hyperparameters, student_hyperparameters = _bbc_short_models(epochs=2 if budget == "small" else 10)
    return DistillTask(
        "bbc-short-unlabeled", "label", train, tuning, {"test": test}, teacher_hyperparameters,
        student_hyperparameters, unlabeled=unlabeled.drop(columns="label").reset_index(drop=True),
        notes=[f"{len(train)} labelled training articles (first 24 words), {len(unlabeled)} without labels",
               BBC_SHORT_MODELS])


def multilingual_pairs(budget: str = "full", seed: int = 0) -> DistillTask:
    """Question/answer match in 8 languages: a me5-small teacher, a 3-layer student from its layers 3, 7, 11."""
    import pandas as pd

    from ..datasets import load_multilingual_pairs

    languages = ["english", "german", "spanish", "italian", "portuguese", "japanese", "korean", "chinese"]
    per_language = 60 if budget == "small" else 240
    train, tuning, test = load_multilingual_pairs(languages=languages, max_pairs_per_language=per_language,
                                                  seed=seed)
    # Transfer rows: more pairs of the same languages, labels dropped, none sharing a question with the
    # tuning or test rows (the labelled rows are left out as well).
    everything = pd.concat(load_multilingual_pairs(languages=languages, seed=seed))
    held_out = set(pd.concat([train, tuning, test]).sentence1)
    unlabeled = everything[~everything.sentence1.isin(held_out)].drop(columns=["label", "language"])
    unlabeled = unlabeled.sample(n=min(len(unlabeled), 6 * per_language * len(languages) // 4), random_state=seed)
    tests = {lang: part for lang, part in test.groupby("language")}
    tests["all"] = test
    # The 3-layer student needs more steps and a larger learning rate than the teacher to learn the pair
    # relation at all (at 3 epochs and 1e-4 it stays at chance with or without a teacher).
    teacher_epochs, student_epochs = (2, 2) if budget == "small" else (3, 6)
    return DistillTask(
        "multilingual-pairs", "label", train.drop(columns="language"), tuning.drop(columns="language"),
        {k: v.drop(columns="language") for k, v in tests.items()},
        teacher_hyperparameters={**AS_MEASURED, "model.hf_text.max_text_len": 64,
                                 "optimization.max_epochs": teacher_epochs,
                                 "model.hf_text.checkpoint_name": "me5-small", "optim.lr": 5e-5},
        student_hyperparameters={**AS_MEASURED, "model.hf_text.max_text_len": 64,
                                 "optimization.max_epochs": student_epochs,
                                 "model.hf_text.checkpoint_name": "me5-small:layers=3,7,11", "optim.lr": 3e-4},
        eval_metric="accuracy", unlabeled=unlabeled.reset_index(drop=True),
        notes=[f"{len(train)} training pairs in {len(languages)} languages (language column not a feature); "
               f"{len(unlabeled)} unlabeled transfer pairs",
               "teacher: me5-small (12 layers); student: 3 layers (3, 7, 11) of pretrained me5-small, same tokenizer"])


def chatterbot_topics(budget: str = "full", seed: int = 0) -> DistillTask:
    """Topic of a chat utterance (18 topics of chatterbot-corpus, English): a task no recipe was tuned on.

    Teacher minilm-l6, student minilm-l3 (another pretrained checkpoint with the same tokenizer), both with the
    same settings, as a user who follows the PAWS-X walkthrough would name them.
    """
    from sklearn.model_selection import train_test_split

    from ..datasets import load_chatterbot_categories

    train, test = load_chatterbot_categories(seed=seed)
    if budget == "small":
        train = train.groupby("label").head(12)
    train, tuning = train_test_split(train, test_size=0.2, stratify=train["label"], random_state=seed)
    common = {**AS_MEASURED, "model.hf_text.max_text_len": 48, "optim.lr": 1e-4,
              "optimization.max_epochs": 2 if budget == "small" else 8}
    return DistillTask("chatterbot-topics", "label", train, tuning, {"test": test},
                       {**common, "model.hf_text.checkpoint_name": "minilm-l6"},
                       {**common, "model.hf_text.checkpoint_name": "minilm-l3"},
                       notes=[f"{len(train)} training utterances, {train['label'].nunique()} topics",
                              "teacher: minilm-l6 fine-tuned; student: pretrained minilm-l3, the same settings"])


def fashion_mnist(budget: str = "full", seed: int = 0) -> DistillTask:
    """Fashion-MNIST clothes at 64 px: an efficientnet-lite0 teacher from ImageNet weights, a student keeping the
    first block of each of its 7 stages (the ImageNet weights of those blocks)."""
    from sklearn.model_selection import train_test_split

    from ..datasets import load_fashion_mnist

    train, test = load_fashion_mnist(n_train=400 if budget == "small" else 2500,
                                     n_test=200 if budget == "small" else 1000, seed=seed)
    train, tuning = train_test_split(train, test_size=0.2, stratify=train["label"], random_state=seed)
    common = {**AS_MEASURED, "model.timm_image.image_size": 64,
              "optimization.max_epochs": 1 if budget == "small" else 4,
              "optim.lr": 1e-3}
    return DistillTask("fashion-mnist", "label", train, tuning, {"test": test},
                       {**common, "model.timm_image.checkpoint_name": "efficientnet-lite0"},
                       {**common, "model.timm_image.checkpoint_name": "efficientnet-lite0:blocks=1"},
                       notes=[f"{len(train)} training images of 10 classes, 64 px",
                              "teacher: efficientnet-lite0 (16 blocks, ImageNet weights) fine-tuned; student: its "
                              "first block of each stage (7 blocks, ImageNet weights), the same settings"])


TASKS = {"bbc-short": bbc_short, "bbc-short-unlabeled": bbc_short_unlabeled, "multilingual-pairs": multilingual_pairs,
         "chatterbot-topics": chatterbot_topics, "fashion-mnist": fashion_mnist}
