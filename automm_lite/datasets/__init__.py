"""Real labeled data: PAWS-X and GLUE from the Hub (online) and offline stand-ins read from PyPI data packages.

One module per source: ``bbc`` (BBC News topics), ``chatterbot`` (chat topics and multilingual question/answer
pairs), ``reviews`` (drug reviews), ``images`` (Fashion-MNIST, digits as PNG files), ``hub`` (PAWS-X and GLUE).
"""
from .bbc import BBC_LABELS, load_bbc_news
from .chatterbot import MIN_PAIR_SIZE, list_pair_languages, load_chatterbot_categories, load_multilingual_pairs
from .hub import (
    GLUE_ALIASES,
    GLUE_HUB_ID,
    GLUE_METRICS,
    GLUE_TASKS,
    PAWSX_HUB_ID,
    PAWSX_LANGUAGES,
    DatasetUnavailableError,
    glue_task_name,
    load_glue,
    load_pawsx,
)
from .images import FASHION_MNIST_LABELS, load_digit_images, load_fashion_mnist
from .reviews import DRUG_REVIEW_LABELS, load_drug_reviews

__all__ = ["BBC_LABELS", "DRUG_REVIEW_LABELS", "FASHION_MNIST_LABELS", "GLUE_ALIASES", "GLUE_HUB_ID", "GLUE_METRICS",
           "GLUE_TASKS", "MIN_PAIR_SIZE", "PAWSX_HUB_ID", "PAWSX_LANGUAGES", "DatasetUnavailableError",
           "glue_task_name", "list_pair_languages", "load_bbc_news", "load_chatterbot_categories",
           "load_digit_images", "load_drug_reviews", "load_fashion_mnist", "load_glue", "load_multilingual_pairs",
           "load_pawsx"]
