"""Model and tokenizer loading for the training commands, failing early with a message that names the field.

Besides loading a checkpoint (local or hub), a model can be built from a config with fresh, seeded weights
(`model_init_from_config`), which is how the demo trains a tiny model offline.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from ls_llm.trainers.model_checks import check_model_files, check_vocabulary

# Heavy imports stay inside functions (torch, transformers): `ls-llm` imports this module before it knows a
# command needs them.


@dataclass
class ModelLoadArguments:
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Tokenizer to use (default: model_name_or_path's)."})
    model_init_from_config: bool = field(default=False, metadata={
        "help": "Build model_name_or_path (a config.json or a folder holding one) with fresh weights "
        "seeded by `seed`, its vocab sized to the tokenizer, instead of loading weights."})


def _check_local(field_name: str, path: str | None) -> None:
    # A hub id looks like "org/name"; anything path-like must exist, so a typo fails here and not deep in
    # transformers with a hub-lookup message.
    if path is None:
        raise ValueError(f"{field_name} is required")
    if os.path.exists(path):
        return
    if path.startswith(("/", "./", "../", "~")) or path.endswith((".json", ".yaml")) or path.count("/") > 1:
        raise ValueError(f"{field_name}={path!r} does not exist")


def load_tokenizer(model_args, load_args: ModelLoadArguments, *, trust_remote_code: bool = False):
    """The tokenizer; `trust_remote_code` is the recipe's (a field of trl's SFTConfig, not of ModelConfig)."""
    from transformers import AutoTokenizer

    name_field = "tokenizer_name_or_path" if load_args.tokenizer_name_or_path else "model_name_or_path"
    name = load_args.tokenizer_name_or_path or model_args.model_name_or_path
    _check_local(name_field, name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, revision=model_args.model_revision,
                                                  trust_remote_code=trust_remote_code)
    except OSError as err:
        raise ValueError(f"{name_field}={name!r} could not be loaded as a tokenizer: {err}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model_args, load_args: ModelLoadArguments, training_args, tokenizer):
    """The model to train (no PEFT wrapping: trl does that from `peft_config`), with the recipe's
    `trust_remote_code` (`training_args.trust_remote_code`)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, set_seed

    path = model_args.model_name_or_path
    _check_local("model_name_or_path", path)
    check_model_files(path, init_from_config=load_args.model_init_from_config)
    trust = bool(getattr(training_args, "trust_remote_code", False))
    dtype = model_args.dtype if model_args.dtype not in (None, "auto") else "float32"
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"dtype must be one of auto, float32, bfloat16, float16, got {model_args.dtype!r}")
    try:
        if load_args.model_init_from_config:
            config = AutoConfig.from_pretrained(path, trust_remote_code=trust)
            config.vocab_size = len(tokenizer)
            config.pad_token_id, config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
            set_seed(training_args.seed)
            return AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype), trust_remote_code=trust)
        model = AutoModelForCausalLM.from_pretrained(path, revision=model_args.model_revision, trust_remote_code=trust,
                                                     attn_implementation=model_args.attn_implementation,
                                                     dtype=getattr(torch, dtype))
    except OSError as err:
        raise ValueError(f"model_name_or_path={path!r} could not be loaded: {err}") from err
    check_vocabulary(model, tokenizer, path)
    return model


def check_chat_template(tokenizer, dataset, training_args, tokenizer_name: str) -> None:
    """Conversational rows need a chat template; say so before training rather than mid-tokenization."""
    conversational = "messages" in dataset.column_names or (
        "prompt" in dataset.column_names and isinstance(dataset[0]["prompt"], list))
    if conversational and tokenizer.chat_template is None and training_args.chat_template_path is None:
        raise ValueError(
            f"tokenizer {tokenizer_name!r} has no chat template, needed for the conversational "
            "('messages') dataset: set chat_template_path or use a tokenizer that has one")


def check_same_tokenizer(student_tokenizer, teacher_tokenizer, *, teacher_name: str) -> None:
    """Refuse a teacher whose tokenizer maps any token to another id than the student's (before any training)."""
    s_vocab, t_vocab = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if s_vocab == t_vocab:
        return
    token = sorted(set(s_vocab.items()) ^ set(t_vocab.items()), key=lambda kv: kv[1])[0][0]
    raise ValueError(
        f"teacher tokenizer {teacher_name!r} differs from the student's ({len(t_vocab)} vs {len(s_vocab)} tokens; "
        f"token {token!r} has id {t_vocab.get(token)} in the teacher and {s_vocab.get(token)} in the student): "
        "distillation compares next-token distributions and needs one shared tokenizer")


def check_teacher_tokenizer(args, model_args, student_tokenizer):
    """Load the teacher's tokenizer (no weights) and check it is the student's: (teacher model args, teacher load
    args, teacher tokenizer) for loading the weights afterwards."""
    teacher_model_args = dataclasses.replace(model_args, model_name_or_path=args.teacher_model_name_or_path,
                                             model_revision="main", dtype=args.teacher_dtype)
    teacher_load = ModelLoadArguments(tokenizer_name_or_path=args.teacher_tokenizer_name_or_path)
    try:
        teacher_tokenizer = load_tokenizer(teacher_model_args, teacher_load, trust_remote_code=args.trust_remote_code)
    except ValueError as err:
        raise ValueError(_as_teacher_field(err)) from err
    teacher_name = args.teacher_tokenizer_name_or_path or args.teacher_model_name_or_path  # what it loaded
    check_same_tokenizer(student_tokenizer, teacher_tokenizer, teacher_name=teacher_name)
    return teacher_model_args, teacher_load, teacher_tokenizer


def load_teacher(args, model_args, student_tokenizer):
    """The teacher model, after checking (before loading any weights) that its tokenizer is the student's."""
    teacher_model_args, teacher_load, teacher_tokenizer = check_teacher_tokenizer(args, model_args, student_tokenizer)
    try:
        return load_model(teacher_model_args, teacher_load, args, teacher_tokenizer)
    except ValueError as err:
        raise ValueError(_as_teacher_field(err)) from err


def _as_teacher_field(err: ValueError) -> str:
    text = str(err)
    if "tokenizer_name_or_path" in text:
        return text.replace("tokenizer_name_or_path", "teacher_tokenizer_name_or_path", 1)
    return text.replace("model_name_or_path", "teacher_model_name_or_path", 1)
