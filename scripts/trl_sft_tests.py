"""Run trl's own SFT test file against trl's `SFTTrainer` and against `LsSFTTrainer`, offline, and compare.

    python scripts/trl_sft_tests.py --trl-repo PATH/TO/trl [--ref v1.16.0] [--work DIR] [-k EXPR]
    (or: make test-trl TRL_REPO=PATH/TO/trl TRL_REF=v1.16.0)

It copies `tests/test_sft_trainer.py` and `tests/testing_utils.py` of a local trl clone (at `--ref`, read with
`git show`; trl is Apache-2.0 and nothing of it is committed here) into `--work`, and runs the file twice with
pytest: once as it is, once with `SFTTrainer` bound to `ls_llm.trainers.LsSFTTrainer`. Nothing is downloaded:

- each `trl-internal-testing/tiny-<Arch>ForCausalLM*` model id becomes a local folder holding a tiny <Arch>
  built from its transformers config (2 layers, hidden 32) with this project's shipped chat tokenizer; an id
  that is not a plain causal LM of the installed transformers (VLMs, remote code) is left as it is, so its
  tests fail for both trainers;
- `load_dataset("trl-internal-testing/zen", <config>)` gives small local rows of the same columns for the
  language-modeling, prompt-completion and preference configs; other hub datasets fail for both;
- a name the test file imports from trl that the installed trl lacks becomes None (its tests fail for both);
- without a CUDA device, trl's configs default to bf16=False (trl's default, True, is refused on such a CPU).

So the comparison that matters is the last table: tests trl's trainer passes and LsSFTTrainer does not. Runtime
on 2 CPU cores: about 15 minutes for each of the two runs.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_ID = re.compile(r'"trl-internal-testing/tiny-([A-Za-z0-9]+)ForCausalLM([A-Za-z0-9._-]*)"')
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=8, moe_intermediate_size=16, num_experts=4, num_local_experts=4, num_experts_per_tok=2,
            n_routed_experts=4, max_position_embeddings=512, tie_word_embeddings=False)
_SENTENCES = ["Beautiful is better than ugly.", "Explicit is better than implicit.", "Simple is better than complex.",
              "Complex is better than complicated.", "Flat is better than nested.", "Sparse is better than dense.",
              "Readability counts.", "Errors should never pass silently.", "Now is better than never.",
              "In the face of ambiguity, refuse the temptation to guess."]


def zen_rows(config: str) -> list[dict]:
    """Rows with the columns of trl-internal-testing/zen's `config` (the texts are stand-ins)."""
    rows = []
    for i, s in enumerate(_SENTENCES * 2):
        head, _, tail = s.partition(" is ") if " is " in s else (s[:8], "", s[8:])
        prompt, completion = head, (" is " + tail) if tail else tail
        user = [{"role": "user", "content": f"What about {head.lower()}?"}]
        reply = [{"role": "assistant", "content": s}]
        rows.append({
            "standard_language_modeling": {"text": s},
            "conversational_language_modeling": {"messages": user + reply},
            "standard_prompt_completion": {"prompt": prompt, "completion": completion},
            "conversational_prompt_completion": {"prompt": user, "completion": reply},
            "standard_implicit_prompt_preference": {"chosen": s, "rejected": _SENTENCES[(i + 3) % 10]},
        }[config])
    return rows


def build_model(arch: str, out: Path) -> bool:
    """A tiny <arch>ForCausalLM with the shipped tokenizer in `out`; False if transformers has no such plain
    causal LM (the test then fails for both trainers)."""
    import torch
    import transformers
    from transformers import AutoTokenizer

    from ls_llm.data.synthetic import tokenizer_path

    model_cls, config_cls = (getattr(transformers, f"{arch}ForCausalLM", None), getattr(transformers, f"{arch}Config", None))
    if model_cls is None or config_cls is None:
        return False
    tok = AutoTokenizer.from_pretrained(tokenizer_path())
    try:
        config = config_cls(**TINY, vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                            bos_token_id=tok.bos_token_id)
        torch.manual_seed(0)
        model = model_cls(config)
        model(torch.tensor([[3, 4, 5]]))
    except Exception as e:  # noqa: BLE001  (an architecture the tiny config does not fit: reported, not fatal)
        print(f"  no stand-in for {arch}: {type(e).__name__}: {str(e)[:120]}", file=sys.stderr)
        return False
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return True


def _tolerant_trl_imports(source: str) -> str:
    """`from trl... import a, b` -> each name looked up, None (or a False `is_*_available`) when missing."""
    tree = ast.parse(source)
    body = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "trl":
            for alias in node.names:
                name = alias.asname or alias.name
                default = "(lambda *a, **k: False)" if alias.name.startswith("is_") else "None"
                body += ast.parse(f"{name} = getattr(__import__('importlib').import_module({node.module!r}), "
                                  f"{alias.name!r}, {default})").body
        else:
            body.append(node)
    tree.body = body
    return ast.unparse(tree)


STANDIN_PRELUDE = '''
import datasets as _datasets
import torch as _torch
from trl.trainer import base_config as _base_config

if not _torch.cuda.is_available():
    # trl's configs default to bf16 (it runs its tests on GPUs); on a CPU without bf16 that default is refused.
    _trl_post_init = _base_config._BaseConfig.__post_init__

    def _cpu_post_init(self):
        self.bf16 = False if self.bf16 is None else self.bf16
        _trl_post_init(self)

    _base_config._BaseConfig.__post_init__ = _cpu_post_init
_STANDIN_DATA = {data!r}

def load_dataset(path, name=None, split=None, **kwargs):
    """trl-internal-testing/zen from local stand-in rows (see scripts/trl_sft_tests.py)."""
    if path == "trl-internal-testing/zen" and name in _STANDIN_DATA:
        files = {{s: f"{{_STANDIN_DATA[name]}}/{{s}}.jsonl" for s in ("train", "test")}}
        return _datasets.load_dataset("json", data_files=files, split=split, **kwargs)
    return _datasets.load_dataset(path, name, split=split, **kwargs)
'''


def prepare(trl_repo: Path, ref: str, work: Path) -> dict[str, Path]:
    work.mkdir(parents=True, exist_ok=True)
    show = lambda path: subprocess.run(["git", "-C", str(trl_repo), "show", f"{ref}:{path}"],  # noqa: E731
                                       check=True, capture_output=True, text=True).stdout
    source, utils = show("tests/test_sft_trainer.py"), show("tests/testing_utils.py")
    data = {}
    for config in ("standard_language_modeling", "conversational_language_modeling", "standard_prompt_completion",
                   "conversational_prompt_completion", "standard_implicit_prompt_preference"):
        folder = work / "standins" / "zen" / config
        folder.mkdir(parents=True, exist_ok=True)
        rows = zen_rows(config)
        for split, part in (("train", rows[:17]), ("test", rows[17:])):
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
        data[config] = str(folder)
    for match in sorted(set(MODEL_ID.finditer(source)), key=lambda m: m.group(0)):
        folder = work / "standins" / "models" / match.group(0).strip('"').split("/")[1]
        if (folder / "config.json").exists() or build_model(match.group(1), folder):
            source = source.replace(match.group(0), json.dumps(str(folder)))
    source = _tolerant_trl_imports(source)
    # The stand-in loader replaces the name the file imported from datasets; it goes after the imports.
    source = source.replace("\nclass ", STANDIN_PRELUDE.format(data=data) + "\nclass ", 1)
    out = {}
    for variant, extra in (("trl", ""), ("ls", "\nfrom ls_llm.trainers import LsSFTTrainer as SFTTrainer\n")):
        folder = work / f"sft_{variant}"
        folder.mkdir(exist_ok=True)
        (folder / "__init__.py").write_text("")
        (folder / "testing_utils.py").write_text(_tolerant_trl_imports(utils))
        (folder / "test_sft_trainer.py").write_text(source.replace("\nclass ", extra + "\nclass ", 1))
        out[variant] = folder
    return out


def run(folder: Path, keyword: str | None) -> dict[str, tuple[str, str]]:
    report = folder / "report.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
           str(folder / "test_sft_trainer.py"), "-W", "ignore"] + (["-k", keyword] if keyword else [])
    subprocess.run(cmd, cwd=folder.parent, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1",
                                                  "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
                   capture_output=True, text=True)
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            outcomes[name] = ("failed", (bad.get("message") or "").splitlines()[0][:160] if bad.get("message") else "")
        elif case.find("skipped") is not None:
            outcomes[name] = ("skipped", "")
        else:
            outcomes[name] = ("passed", "")
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trl-repo", type=Path, required=True, help="a local git clone of huggingface/trl")
    parser.add_argument("--ref", default="v1.16.0", help="the trl tag or commit whose tests to run")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "trl_sft_tests")
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    args = parser.parse_args(argv)
    folders = prepare(args.trl_repo, args.ref, args.work)
    results = {variant: run(folder, args.keyword) for variant, folder in folders.items()}
    print(f"trl tests at {args.ref}: {len(results['trl'])} collected")
    for variant, label in (("trl", "SFTTrainer"), ("ls", "LsSFTTrainer")):
        counts = {k: sum(1 for o, _ in results[variant].values() if o == k) for k in ("passed", "failed", "skipped")}
        print(f"  {label:13s} passed {counts['passed']:4d}  failed {counts['failed']:4d}  skipped {counts['skipped']:4d}")
    lost = sorted(n for n, (o, _) in results["trl"].items() if o == "passed" and results["ls"].get(n, ("",))[0] != "passed")
    print(f"passed by SFTTrainer, not by LsSFTTrainer: {len(lost)}")
    for name in lost:
        print(f"  {name}: {results['ls'].get(name, ('missing', ''))[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
