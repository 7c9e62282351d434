"""`completion_only_loss: true` trains the assistant's completion and nothing else, for every input format and
chat template: the shipped tokenizer's (with `{% generation %}` markers), Qwen3's (thinking blocks), and a plain
ChatML template without generation markers. Checked on trl's prepared dataset, the labels the trainer sees.

(Before, the loader emitted `messages`, on which trl silently trains the prompt too.)"""

from pathlib import Path

import pytest

from ls_llm.data.args import LsDataArguments
from ls_llm.data.loading import load_traces

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "fixtures" / "data"
FORMATS = {"messages.jsonl": "messages", "prompt_completion.jsonl": "prompt_completion", "math.jsonl": "problem_solution",
           "gsm8k.jsonl": "question_answer", "r1.jsonl": "r1", "arith": "messages"}
ARITH = ROOT / "tests" / "fixtures" / "trainers" / "arith_train.jsonl"  # the demo's traces
# The shipped tokenizer knows digits and arithmetic only: it reads the demo's traces; the others read every format.
CASES = [("shipped", "arith")] + [(t, f) for t in ("qwen3", "chatml_no_markers") for f in sorted(FORMATS)]


@pytest.mark.parametrize(("which", "name"), CASES)
def test_only_the_completion_is_trained(which, name, tmp_path, chat_tokenizers):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from ls_llm.trainers import LsSFTConfig, LsSFTTrainer

    tok = chat_tokenizers(which)
    path = ARITH if name == "arith" else DATA / name
    data = load_traces(LsDataArguments(dataset_name=str(path), dataset_format=FORMATS[name], dataset_max_samples=6,
                                       dataset_answer_instruction=""))["train"]
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, pad_token_id=tok.pad_token_id))
    args = LsSFTConfig(output_dir=str(tmp_path), completion_only_loss=True, max_length=4096, use_cpu=True, bf16=False,
                       report_to="none", per_device_train_batch_size=1)
    prepared = LsSFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok).train_dataset
    assert len(prepared) == len(data)
    for row, source in zip(prepared, data):
        ids, labels = row["input_ids"], row["labels"]
        prompt = tok.apply_chat_template(source["prompt"], tokenize=True, add_generation_prompt=True,
                                         return_dict=True)["input_ids"]
        trained = [i for i, label in enumerate(labels) if label != -100]
        assert ids[:len(prompt)] == list(prompt), "the prompt's tokens start the sequence"
        assert trained and trained[0] == len(prompt), (which, name, tok.decode(ids[trained[0]:trained[0] + 8]))
        assert trained == list(range(len(prompt), len(ids))), "every completion token is trained, nothing else"
        completion = tok.decode(ids[len(prompt):])
        assert source["completion"][0]["content"].split("</think>")[-1].strip()[:20] in completion


def test_assistant_only_loss_trains_every_assistant_turn_of_a_multi_turn_conversation(tmp_path, chat_tokenizers):
    """Multi-turn rows: the earlier assistant turns sit in the prompt; `assistant_only_loss` still trains them
    (and no user turn), through the shipped template's `{% generation %}` markers."""
    import json

    from transformers import Qwen2Config, Qwen2ForCausalLM

    from ls_llm.trainers import LsSFTConfig, LsSFTTrainer

    first, second = (json.loads(line)["messages"] for line in ARITH.read_text().splitlines()[:2])
    path = tmp_path / "multi.jsonl"
    path.write_text(json.dumps({"messages": first + second}) + "\n")
    tok = chat_tokenizers("shipped")
    data = load_traces(LsDataArguments(dataset_name=str(path), dataset_format="messages",
                                       dataset_answer_instruction=""))["train"]
    assert [m["role"] for m in data[0]["prompt"]] == ["user", "assistant", "user"]
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, pad_token_id=tok.pad_token_id))
    args = LsSFTConfig(output_dir=str(tmp_path / "o"), assistant_only_loss=True, max_length=1024, use_cpu=True,
                       bf16=False, report_to="none")
    row = LsSFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok).train_dataset[0]
    trained = tok.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label != -100])
    for turn in (first[1], second[1]):
        assert turn["content"] in trained
    for turn in (first[0], second[0]):
        assert turn["content"] not in trained
