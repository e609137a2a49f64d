"""The text backbone's attention switch: set inside a block, restored to what was there before, whatever happens."""
import pytest

from automm_lite.config import Config, apply_overrides
from automm_lite.models import build_model


def text_backbone(tiny_text_dir):
    config = apply_overrides(Config(), {"model.hf_text.checkpoint_name": tiny_text_dir})
    return build_model(config, ["hf_text"], {"n_outputs": 2, "n_numerical": 0, "cardinalities": []}).text_backbone


def implementation(backbone):
    return backbone.encoder.config._attn_implementation


def test_the_attention_switch_restores_what_was_set_before(tiny_text_dir):
    backbone = text_backbone(tiny_text_dir)
    assert implementation(backbone) == "sdpa"
    with backbone.attention_implementation("eager"):
        assert implementation(backbone) == "eager"
        with backbone.attention_implementation(None):  # None: leave it as it is
            assert implementation(backbone) == "eager"
    assert implementation(backbone) == "sdpa"
    backbone.encoder.set_attn_implementation("eager")  # not the default: it must come back, not "sdpa"
    with backbone.attention_implementation("sdpa"):
        assert implementation(backbone) == "sdpa"
    assert implementation(backbone) == "eager"


def test_the_attention_switch_is_restored_when_the_block_fails(tiny_text_dir):
    backbone = text_backbone(tiny_text_dir)
    with pytest.raises(RuntimeError, match="inside"):
        with backbone.attention_implementation("eager"):
            raise RuntimeError("inside")
    assert implementation(backbone) == "sdpa"
