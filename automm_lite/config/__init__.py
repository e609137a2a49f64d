"""Configuration: the hyperparameter keys with their defaults, help and bounds (``schema``), the engine that
checks and applies values by the same declarations (``overrides``), and the checks of arguments that are not keys
(``checks``). Everything is importable from here, as from one module."""
from .checks import argument_error, check_arguments, check_fit_config
from .overrides import (ALIASES, AUTO, VALUE_ALIASES, _iter_owners, _key, _specs, apply_overrides, canonical_key,
                        fields_table, flatten, parse_hyperparameters, refusal, spellings)
from .schema import (IMAGE_TRANSFORMS, PEFT_METHODS, STRATEGIES, ClassicalConfig, Config, DataConfig,
                     DistillerConfig, EnvConfig, FusionMlpConfig, HfTextConfig, LoraConfig, ModelConfig,
                     OptimizationConfig, TabularMlpConfig, TimmImageConfig, iter_fields, keys_table, valid_keys,
                     value_kind)

__all__ = [
    "ALIASES", "AUTO", "IMAGE_TRANSFORMS", "PEFT_METHODS", "STRATEGIES", "VALUE_ALIASES", "ClassicalConfig",
    "Config", "DataConfig", "DistillerConfig", "EnvConfig", "FusionMlpConfig", "HfTextConfig", "LoraConfig",
    "ModelConfig", "OptimizationConfig", "TabularMlpConfig", "TimmImageConfig", "apply_overrides", "argument_error",
    "canonical_key", "check_arguments", "check_fit_config", "fields_table", "flatten", "iter_fields", "keys_table",
    "parse_hyperparameters", "refusal", "spellings", "valid_keys", "value_kind",
    # the declaration of a checked field, and the engine's view of a dataclass tree (its leaves, their specs)
    "_key", "_iter_owners", "_specs",
]
