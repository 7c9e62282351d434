"""scripts/trl_sft_tests.py (make test-trl): its rewriting of trl's test file, without running trl's tests."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "trl_sft_tests.py"


def _harness():
    spec = importlib.util.spec_from_file_location("trl_sft_tests", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_names_the_installed_trl_lacks_become_none_and_the_rest_import():
    source = "from trl import SFTConfig, no_such_name\nfrom trl.import_utils import is_nothing_available\nx = 1\n"
    namespace = {}
    exec(_harness()._tolerant_trl_imports(source), namespace)
    from trl import SFTConfig

    assert namespace["SFTConfig"] is SFTConfig and namespace["no_such_name"] is None
    assert namespace["is_nothing_available"]() is False and namespace["x"] == 1


def test_zen_stand_ins_have_the_columns_of_each_config():
    zen_rows = _harness().zen_rows
    assert set(zen_rows("standard_language_modeling")[0]) == {"text"}
    assert set(zen_rows("standard_prompt_completion")[0]) == {"prompt", "completion"}
    row = zen_rows("conversational_prompt_completion")[0]
    assert row["prompt"][0]["role"] == "user" and row["completion"][0]["role"] == "assistant"
    assert [m["role"] for m in zen_rows("conversational_language_modeling")[0]["messages"]] == ["user", "assistant"]


def test_the_model_ids_of_trl_tests_are_recognised():
    match = _harness().MODEL_ID.search('model="trl-internal-testing/tiny-Qwen2ForCausalLM-2.5"')
    assert match and match.group(1) == "Qwen2"
