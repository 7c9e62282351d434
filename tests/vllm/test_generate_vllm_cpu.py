"""vLLM's CPU build and transformers decode greedily to the same token ids on the same tiny float32 model."""

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402

PROMPTS = ["What is 17 + 25?", "Tom has 3 apples and buys 4 more. How many now?", "Compute 9 * 8.",
           "Which is larger, 0.5 or 0.45?", "Name a prime number above 20."]
NEW_TOKENS = 32


def test_greedy_token_ids_equal_transformers(qwen2_hd64):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from vllm import LLM, SamplingParams, TokensPrompt

    tok = AutoTokenizer.from_pretrained(qwen2_hd64)
    prompts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True,
                                       return_dict=False) for p in PROMPTS]
    model = AutoModelForCausalLM.from_pretrained(qwen2_hd64, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None  # both sides run the full length: argmax only, no stopping
    hf = []
    for ids in prompts:
        out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=0)
        hf.append(out[0, len(ids):].tolist())

    llm = LLM(model=str(qwen2_hd64), dtype="float32", max_model_len=512, enforce_eager=True,
              gpu_memory_utilization=0.25, seed=0)
    try:
        params = SamplingParams(temperature=0, max_tokens=NEW_TOKENS, ignore_eos=True, detokenize=False)
        outputs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts], params, use_tqdm=False)
    finally:
        llm.llm_engine.engine_core.shutdown()
    vllm_ids = [list(o.outputs[0].token_ids) for o in outputs]
    assert all(len(ids) == NEW_TOKENS for ids in hf)
    assert vllm_ids == hf
