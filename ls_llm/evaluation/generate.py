"""`ls-llm generate`: a teacher samples k completions per problem; the output is a trace dataset.

The problems are read as `ls-llm train` reads data (`ls_llm.data.loading.load_rows`: any format, field map,
hub or local), their prompt (the turns before the assistant turn) sent through the model's chat template and
their reference ``answer`` carried along. Rows with the same prompt are one problem. Generation goes through
`ls-llm eval`'s backends (lm-eval's vLLM or HF model class, `evaluation/backends.py`) wrapped in its journal
(`evaluation/resume.py`): each chunk of samples is appended to ``generations.journal.jsonl`` as soon as it
returns, so a kill loses at most the chunk in flight and a re-run of the same command replays the journal and
generates only the rest. ``manifest.json`` holds the settings that decide the samples' distribution and the
model's fingerprint; a re-run into the folder with other settings or another model is refused (its samples
would be mixed with these). ``traces.jsonl`` is written, atomically, only when every sample is there.

Seeds: vLLM gets a seed per sample (from --seed, the prompt and the sample index), so a sampled run is
reproducible sample by sample, resumed or not. transformers samples from one generator seeded once per run:
an uninterrupted run is reproducible, and after a resume the new samples are other (equally valid) draws.
Greedy decoding is reproducible on both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ls_llm.answers import extract_final_answer
from ls_llm.data.args import LsDataArguments
from ls_llm.data.folder_lock import folder_lock
from ls_llm.data.loading import load_rows
from ls_llm.evaluation.backends import build_lm, check_backend, get_backend, resolve_backend
from ls_llm.evaluation.checkpoint import check_checkpoint
from ls_llm.evaluation.fingerprint import checkpoint_fingerprint
from ls_llm.evaluation.generate_config import GenerateConfig
from ls_llm.evaluation.resume import JournaledLM, request_key
from ls_llm.evaluation.runner import JOURNAL_FILE, _seed_everything
from ls_llm.files import write_atomic, write_jsonl

# Heavy imports stay inside functions (lm_eval, tqdm): `ls-llm` imports this module before it knows a command
# needs them.

logger = logging.getLogger(__name__)

TRACES_FILE = "traces.jsonl"
MANIFEST_FILE = "manifest.json"
META_COLUMNS = ("source", "subject", "level")


@dataclass(frozen=True)
class Problem:
    problem_id: str
    prompt: list[dict]  # chat messages: every turn before the assistant's
    answer: str | None
    meta: dict


def load_problems(cfg: GenerateConfig) -> list[Problem]:
    """The distinct prompts of ``cfg.data`` in file order; ValueError naming the file when it holds none."""
    args = LsDataArguments(dataset_name=cfg.data, dataset_train_split=cfg.split, dataset_format=cfg.data_format,
                           dataset_field_map=cfg.field_map, dataset_system_prompt=cfg.system_prompt,
                           dataset_answer_instruction=cfg.answer_instruction or None)
    rows = load_rows(args)
    problems: dict[str, Problem] = {}
    for row in rows:
        prompt = _prompt_turns(row["messages"])
        if not any(m["role"] == "user" and m["content"].strip() for m in prompt):
            raise ValueError(f"data {cfg.data!r}: row {row['id']!r} has no user prompt to generate from")
        key = json.dumps(prompt, sort_keys=True, ensure_ascii=False)
        if key not in problems:  # several traces of one problem: one problem, its first row's id and answer
            problems[key] = Problem(row["id"], prompt, row.get("answer"), {k: row.get(k) for k in META_COLUMNS})
        elif row.get("answer") not in (None, "", problems[key].answer) and problems[key].answer not in (None, ""):
            raise ValueError(f"data {cfg.data!r}: rows {problems[key].problem_id!r} and {row['id']!r} have the same "
                             f"prompt and two reference answers ({problems[key].answer!r}, {row['answer']!r}); a "
                             "problem has one reference")
        if cfg.limit is not None and len(problems) == cfg.limit:
            break
    if not problems:
        raise ValueError(f"data {cfg.data!r} has no problems to generate from")
    ids = [p.problem_id for p in problems.values()]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"data {cfg.data!r}: problem id {dup!r} names two different prompts; ids must be unique")
    return list(problems.values())


def _prompt_turns(messages: list[dict]) -> list[dict]:
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
    return [{"role": m["role"], "content": m["content"]} for m in messages[:last]]


def check_context(lm, problems: list[Problem], contexts: list[str], max_gen_toks: int) -> None:
    """Refuse a prompt that does not fit the model's context with max_gen_toks: lm-eval would cut the prompt's
    beginning (HF: silently) or shorten the generation, and the traces would answer another question."""
    limit = int(lm.max_length)
    for problem, context in zip(problems, contexts, strict=True):
        tokens = len(lm.tok_encode(context))
        if tokens + max_gen_toks > limit:
            raise ValueError(f"problem {problem.problem_id!r}: its prompt ({tokens} tokens) + max_gen_toks "
                             f"{max_gen_toks} exceed the model's context of {limit} tokens; lower --max-gen-toks "
                             "(vllm: or raise --max-model-len)")


def sample_seed(seed: int, context: str, index: int) -> int:
    """A per-sample seed: the same sample gets the same seed in every run, whatever the batch it lands in."""
    digest = hashlib.sha256(f"{seed}|{index}|{context}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def check_manifest(out: Path, manifest: dict) -> None:
    """Refuse a folder whose samples came from other settings or another model (they must not be mixed)."""
    path = out / MANIFEST_FILE
    if not path.exists():
        if out.exists() and any(out.iterdir()):
            raise ValueError(f"out {str(out)!r} is a non-empty folder without {MANIFEST_FILE}; choose another --out")
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); choose another --out") from err
    for key in ("model_fingerprint", "settings"):
        if old.get(key) != manifest[key]:
            raise ValueError(f"out {str(out)!r} holds samples from other settings ({_differences(old.get(key), manifest[key], key)}); "
                             "its samples must not be mixed with these: choose another --out")


def _differences(old, new, key: str) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        names = [name for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
        return "; ".join(f"{name}: {old.get(name)!r} there, {new.get(name)!r} now" for name in names)
    return f"{key}: {old!r} there, {new!r} now"


def _requests(problems: list[Problem], contexts: list[str], cfg: GenerateConfig, per_request_seed: bool) -> list:
    from lm_eval.api.instance import Instance

    base = cfg.gen_kwargs()
    requests = []
    for number, (problem, context) in enumerate(zip(problems, contexts, strict=True)):
        for index in range(cfg.num_samples):
            kwargs = dict(base)
            if per_request_seed and cfg.do_sample:
                kwargs["seed"] = sample_seed(cfg.seed, context, index)
            requests.append(Instance(request_type="generate_until", doc={"problem_id": problem.problem_id},
                                     arguments=(context, kwargs), idx=index, metadata=("generate", number, 1)))
    return requests


def _generate(lm, requests: list, chunk: int, num_samples: int) -> tuple[list[str], float]:
    """Every request's text through the journal, a few whole problems per call; a bar counts samples/s.

    Whole problems per call: the journal matches the j-th copy of a request to its j-th journaled sample within
    one call, so the k copies of a prompt must not be split over two calls (the second would replay the first's).
    """
    from tqdm.auto import tqdm


    step = max(1, chunk // num_samples) * num_samples
    copies = Counter(request_key(lm.fingerprint, tuple(req.args)) for req in requests)
    replayed = sum(min(count, len(lm.done.get(key, ()))) for key, count in copies.items())
    outputs: list[str] = []
    seconds = 0.0
    with tqdm(total=len(requests), initial=replayed, unit="sample", desc="generate", dynamic_ncols=True) as bar:
        for start in range(0, len(requests), step):
            before, began = lm.generated, time.perf_counter()
            outputs += lm.generate_until(requests[start : start + step], disable_tqdm=True)
            if lm.generated > before:
                seconds += time.perf_counter() - began
                bar.update(lm.generated - before)
    return outputs, seconds


def trace_rows(problems: list[Problem], texts: Iterable[str], num_samples: int) -> list[dict]:
    """One row per sample, in problem order then sample order (the columns of docs/data.md)."""
    texts = list(texts)
    rows = []
    for number, problem in enumerate(problems):
        for index in range(num_samples):
            text = texts[number * num_samples + index]
            rows.append({"id": f"{problem.problem_id}#{index}", "problem_id": problem.problem_id,
                         "sample_index": index, "prompt": problem.prompt, "completion": text,
                         "answer": problem.answer, "predicted_answer": extract_final_answer(text),
                         **{k: v for k, v in problem.meta.items() if v is not None}})
    return rows


def generate_traces(cfg: GenerateConfig) -> dict:
    """Sample ``cfg.num_samples`` completions per problem into ``cfg.out``; returns the manifest written."""
    eval_cfg = cfg.eval_config()
    resolve_backend(eval_cfg)  # "auto": vLLM where importable, else hf, said in one line
    cfg.backend = eval_cfg.backend  # the settings and the journal name the backend that generates
    with folder_lock(cfg.out_dir):  # one writer per run folder: a second generate into it is refused, naming the first
        return _generate_into(cfg, cfg.eval_config())


def _generate_into(cfg: GenerateConfig, eval_cfg) -> dict:
    checkpoint = check_checkpoint(cfg.model, need_tokenizer="tokenizer" not in eval_cfg.extra_model_args)
    fingerprint = checkpoint_fingerprint(checkpoint)
    manifest = {"model": str(checkpoint), "model_fingerprint": fingerprint, "settings": cfg.settings()}
    check_manifest(cfg.out_dir, manifest)  # before anything loads: a refused run costs nothing
    problems = load_problems(cfg)
    backend = check_backend(eval_cfg)
    _seed_everything(cfg.seed)
    start = time.time()
    inner = build_lm(eval_cfg)  # an engine that does not start leaves no folder behind
    try:
        contexts = [inner.apply_chat_template(problem.prompt) for problem in problems]
        check_context(inner, problems, contexts, cfg.max_gen_toks)
        requests = _requests(problems, contexts, cfg, backend.per_request_seed)
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(cfg.out_dir / MANIFEST_FILE, _dump(manifest | {"complete": False}))
        lm = JournaledLM(inner, cfg.out_dir / JOURNAL_FILE, fingerprint=f"{fingerprint}|{cfg.backend}",
                         chunk_size=cfg.chunk_size())
        texts, seconds = _generate(lm, requests, cfg.chunk_size(), cfg.num_samples)
    finally:
        backend.close(inner)
    rows = trace_rows(problems, texts, cfg.num_samples)
    write_jsonl(cfg.out_dir / TRACES_FILE, rows)
    manifest |= {"complete": True, "data": cfg.data, "num_samples": cfg.num_samples, "problems": len(problems),
                 "rows": len(rows), "samples_replayed": lm.replayed, "samples_generated": lm.generated,
                 "generate_seconds": round(seconds, 3),
                 "samples_per_second": round(lm.generated / seconds, 3) if seconds else None,
                 "wall_seconds": round(time.time() - start, 2),
                 "engine": get_backend(eval_cfg).model_args(eval_cfg) | {"batch_size": eval_cfg.batch_size}}
    write_atomic(cfg.out_dir / MANIFEST_FILE, _dump(manifest))
    return manifest


def _dump(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"
