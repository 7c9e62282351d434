"""Run a sweep's cells through the project's own paths: the library run behind `ls-llm train` / `ls-llm
distill` (`ls_llm.trainers.run.run_recipe`, which raises with the cause), then `ls_llm.evaluation.evaluate`
on the clean validation and test splits, then the answer-token ECE. Each cell runs with the environment
restored afterwards (`isolated_environ`): a recipe's `env:` or an evaluation setting never reaches the next.

Resumable at cell granularity: a cell is finished when `cells/<cell id>/result.json` exists (written
last, atomically), and finished cells are skipped. A cell interrupted mid-way starts again from scratch
(its training folder is removed first), so a result never mixes two runs. `--shard i/n` splits the cells
between n processes (a distillation cell goes to its teacher's shard, after it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from ls_llm.data.audit import audit_rows
from ls_llm.data.folder_lock import FolderLocked, folder_lock
from ls_llm.data.loading import split_and_noise
from ls_llm.evaluation.config import DEFAULT_TASKS_DIR
from ls_llm.files import read_jsonl, write_atomic, write_jsonl
from ls_llm.sweep.config import BASE_KIND, REFERENCE_NOISE, TEACHER_KIND, TRACES_KIND, Cell, SweepConfig
from ls_llm.sweep.data import VALIDATION_TASK, data_paths, prepare_data
from ls_llm.sweep.evaluation import accuracy, evaluation
from ls_llm.sweep.inputs import inputs_fingerprint
from ls_llm.sweep.matching import match_teachers
from ls_llm.sweep.memorisation import best_point, reading_row
from ls_llm.sweep.override_types import check_override_types
from ls_llm.sweep.shards import shard_cells
from ls_llm.sweep.teacher_loop import TEACHER_DATA, run_traces, teacher_recipe_keys, trace_cell_keys
from ls_llm.trainers.loading import load_tokenizer
from ls_llm.trainers.recipe import isolated_environ, load_recipe, parse_recipe
from ls_llm.trainers.run import RUNS, run_recipe, sft_arg_types

# Heavy imports stay inside functions (torch, transformers): `ls-llm` imports this module before it knows a
# command needs them.

logger = logging.getLogger(__name__)
# The project's math task template (scoring, metrics); LS_LLM_EVAL_TASKS moves it as it moves eval/tasks.
TEMPLATE = DEFAULT_TASKS_DIR / "_math_template_yaml"
RESULT_FILE = "result.json"
MANIFEST_FILE = "noise_manifest.jsonl"
TRACK_FILE = "tracking.jsonl"
AUDITED_FILE = "train_audited.jsonl"
CACHE_DIR = "teacher_cache"
TRACKED_DIR = "tracked"  # cells/<id>/tracked/step-N: the models of the tracked steps (track.keep_models)
BEST_DIR = "best"  # cells/<id>/best: the model of the tracked step with the best validation accuracy (early_stop_of)
BASE_DATA = "base_data"  # <output_dir>/base_data: the pretraining corpus of the sweep's `bases`


def _flag(key: str, value) -> str:
    # `--key=value` so a negative number (alpha: -0.1) is never read as an option.
    if isinstance(value, bool):
        value = str(value).lower()
    elif isinstance(value, dict | list):
        value = json.dumps(value)
    return f"--{key}={value}"


_STUDENT_FIELDS = ("name", "teacher", "cache_top_k")  # a student's entries that are not recipe keys


def student_spec(sweep: SweepConfig, cell: Cell) -> dict:
    return next(s for s in sweep.distill.student_list() if s["name"] == cell.variant)


def cell_argv(sweep: SweepConfig, cell: Cell, data: dict[str, Path], *, model_dir: Path,
              teacher_dir: Path | None = None, audited: bool = True) -> list[str]:
    """The command line of the cell's training run: `RECIPE --key=value ...` (later keys win). An `audit` variant
    trains on the audited rows; `audited=False` gives the command line that would inject the noise itself."""
    cell_dir = model_dir.parent
    extra = {}
    if cell.kind == "distill":
        student = student_spec(sweep, cell)
        recipe, overrides = sweep.distill.recipe, {**sweep.overrides, **sweep.distill.overrides, **_base_keys(cell, cell_dir),
                                                   **{k: v for k, v in student.items() if k not in _STUDENT_FIELDS},
                                                   sweep.distill.teacher_key: str(teacher_dir)}
        if student.get("cache_top_k"):  # the teacher's top-k, cached by `ls-llm distill-cache` first
            overrides.update(teacher_cache_dir=str(cell_dir / CACHE_DIR), distill_top_k=student["cache_top_k"])
    elif cell.kind == "student":  # the student trained alone: the base train recipe, the student's keys
        recipe, overrides = sweep.recipe, {**sweep.overrides, **_base_keys(cell, cell_dir), **sweep.distill.student_alone}
    elif cell.kind == BASE_KIND:  # a pretrained base: its own recipe on its own clean corpus, no noise keys
        recipe, overrides = sweep.bases.recipe, dict(sweep.bases.overrides)
        extra = {"dataset_name": str(data_paths(cell_dir.parent.parent / BASE_DATA)["train"])}
    elif cell.kind == TEACHER_KIND:  # the teacher loop's teacher: the seed's base on the teachers' clean set
        recipe, (overrides, extra) = sweep.recipe, teacher_recipe_keys(sweep, cell, cell_dir.parent.parent)
    elif cell.kind == TRACES_KIND:  # generated and audited, not trained: no command line (fingerprint: its settings)
        return [TRACES_KIND]
    else:
        variant = sweep.variant(cell.variant)
        # the pretrained model it fine-tunes; the variant's own keys still win
        recipe, overrides = sweep.recipe, {**sweep.overrides, **_base_keys(cell, cell_dir), **variant.recipe_keys(cell.noise_rho)}
        if cell.source:  # continue from the final model of another cell
            overrides.update(model_name_or_path=str(cell_dir.parent / cell.source / "model"),
                             model_init_from_config=False)
        if variant.audit and audited:  # the noisy rows, already injected and audited by the runner (audited_train)
            extra = {"dataset_name": str(cell_dir / AUDITED_FILE), "dataset_format": "messages", "noise_rho": 0.0}
        if cell.traces:  # the teacher's audited traces at the cell's reference-error rate; nothing injected
            extra = trace_cell_keys(cell, cell_dir.parent.parent)
    fixed = {
        "output_dir": str(model_dir),
        "dataset_name": str(data["train"]),
        "dataset_format": "problem_solution",
        "noise_type": cell.noise_type,
        "noise_rho": cell.noise_rho,
        "noise_seed": cell.seed,  # each seed sees a different noisy subset
        "seed": cell.seed,
        "save_strategy": "no",  # the cell, not a checkpoint, is the unit of resumption
    }
    if sweep.track is not None and not extra:  # the corrupted rows and their answers, for the tracking callback
        fixed["noise_manifest"] = str(cell_dir / MANIFEST_FILE)
    fixed.update(extra)
    if cell.kind in (BASE_KIND, TEACHER_KIND) or cell.noise_type == REFERENCE_NOISE:  # nothing is injected
        fixed = {k: v for k, v in fixed.items() if not k.startswith("noise")}
    return [recipe] + [_flag(k, v) for k, v in {**overrides, **fixed}.items()]


def _base_keys(cell: Cell, cell_dir: Path) -> dict:
    """The recipe keys of a cell that fine-tunes a pretrained base (its final model), none without one."""
    if not cell.base:
        return {}
    return {"model_name_or_path": str(cell_dir.parent / cell.base / "model"), "model_init_from_config": False}


def train_cell(kind: str, argv: list[str], callbacks: tuple = ()) -> None:
    """Train the cell: `kind` is a run kind of `ls_llm.trainers.run.RUNS` (train | distill); raises with
    the run's own message on failure."""
    if kind not in RUNS:
        raise ValueError(f"run kind {kind!r} is not a training run ({sorted(RUNS)})")
    run_recipe(kind, argv, callbacks=callbacks)


def _tracking(sweep: SweepConfig, data: dict[str, Path], cell_dir: Path, cell: Cell) -> tuple:
    """The cell's TrackingCallback (ls_llm.sweep.tracking), or none when the sweep tracks nothing. A train cell's
    corrupted rows carry the trace it is trained on (for the teacher-forced measure), made as training makes it."""
    if sweep.track is None or cell.kind in (BASE_KIND, TEACHER_KIND):
        return ()
    from ls_llm.sweep.tracking import TrackingCallback

    spec, train = sweep.track, cell.kind == "train"
    noisy = None
    if train and spec.corrupted_rows and not sweep.variant(cell.variant).audit and not cell.traces:
        noisy = {row["id"]: row["messages"][-1]["content"] for row in noisy_train_rows(sweep, cell, data, cell_dir)}
    return (TrackingCallback(every=spec.every, out=cell_dir / TRACK_FILE,
                             validation=read_jsonl(data["validation"])[: spec.validation_rows],
                             train_rows=read_jsonl(data["train"]), manifest=cell_dir / MANIFEST_FILE,
                             corrupted_limit=spec.corrupted_rows, max_new_tokens=sweep.eval.max_gen_toks,
                             batch_size=sweep.eval.batch_size, noisy_completions=noisy,
                             keep_models=cell_dir / TRACKED_DIR if spec.keep_models and train else None,
                             keep_best=cell_dir / BEST_DIR if train and sweep.early_readings(cell.variant) else None),)


def _argv(sweep: SweepConfig, cell: Cell, root: Path) -> list[str]:
    teacher_dir = teacher_model(sweep, cell, root)[0] if cell.kind == "distill" else None
    return cell_argv(sweep, cell, data_paths(root / "data"), model_dir=root / "cells" / cell.cell_id / "model",
                     teacher_dir=teacher_dir)


def teacher_model(sweep: SweepConfig, cell: Cell, root: Path) -> tuple[Path, dict | None]:
    """The teacher model folder of a distillation cell and, when teachers are matched, the matching
    (ls_llm.sweep.matching: teacher -> {step, val_acc, final}); before the teachers finished, the final model."""
    final = root / "cells" / cell.teacher / "model"
    if not sweep.distill.match_teachers:
        return final, None
    ids = {Cell("train", t, cell.noise_type, cell.noise_rho, cell.seed).cell_id: t for t in sweep.distill.teachers}
    curves = {}
    for teacher_id, name in ids.items():  # in the order distill.teachers lists them (ties in the matching)
        result = _result_by_id(root, teacher_id)
        if result is None or not result.get("curve"):
            return final, None
        curves[name] = result["curve"]

    chosen = match_teachers(curves)
    mine = chosen[ids[cell.teacher]]
    path = final if mine["final"] else root / "cells" / cell.teacher / TRACKED_DIR / f"step-{mine['step']}"
    return path, chosen


def _result_by_id(root: Path, cell_id: str) -> dict | None:
    path = root / "cells" / cell_id / RESULT_FILE
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    if "noise_rate" in result and "noise_rho" not in result:  # written before rho was named noise_rho everywhere
        result["noise_rho"] = result.pop("noise_rate")
    return result


def fingerprint(sweep: SweepConfig, cell: Cell, root: Path) -> str:
    """Hash of everything the cell reads: its command line, the recipe it names (includes resolved), the content
    of the files its keys name (model config, tokenizer, data: `ls_llm.sweep.inputs`), the data and eval
    settings, and its parents' fingerprints (teacher, `init_from` source): both the one the parent would have
    now and the one its result recorded, so a changed or re-run parent makes the cell stale at once. A result
    with another fingerprint is stale and re-run."""
    argv = _argv(sweep, cell, root)
    runs = cell.kind != TRACES_KIND  # a traces cell runs no recipe: its settings are hashed below
    what = {"argv": argv, "recipe": load_recipe(argv[0]) if runs else None, "data": sweep.data.settings(),
            "eval": asdict(sweep.eval), "files": inputs_fingerprint(argv, root) if runs else {}}
    if cell.kind == BASE_KIND:  # its corpus (inside the sweep's folder, so known by its settings); no tracking
        what["base_data"] = sweep.bases.data.settings()
    elif cell.kind == TEACHER_KIND:  # its clean set (its recipe keys are in argv)
        what["teacher_data"] = sweep.traces.data.settings()
    elif cell.kind == TRACES_KIND:  # the sampling, the detectors and the reference-error rates
        what["traces"] = {**{k: v for k, v in asdict(sweep.traces).items() if k not in ("data", "overrides")},
                          "rates": sweep.rates_of(REFERENCE_NOISE)}
    elif sweep.track is not None:  # only then: the fingerprints of sweeps without tracking stay what they were
        what["track"] = {k: v for k, v in asdict(sweep.track).items() if k != "keep_models" or v}  # (same reason)
    if cell.kind == "train" and sweep.early_readings(cell.variant):  # its best tracked model is kept and evaluated
        what["early_readings"] = True
    if cell.needs:
        cells = {c.cell_id: c for c in sweep.cells()}
        what["upstream"] = [[fingerprint(sweep, cells[c], root) if c in cells else None,
                             (_result_by_id(root, c) or {}).get("fingerprint")] for c in cell.needs]
    blob = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def noisy_train_rows(sweep: SweepConfig, cell: Cell, data: dict[str, Path], cell_dir: Path) -> list[dict]:
    """The cell's noisy training rows as `ls-llm train` injects the noise at load time: the cell's own recipe and keys
    are parsed by the training parser and loaded by the same function (`ls_llm.data.loading.split_and_noise`), so
    the noise is the same."""
    argv = cell_argv(sweep, cell, data, model_dir=cell_dir / "model", audited=False)
    load_args, data_args, args, model_args = parse_recipe(argv, sft_arg_types())
    tokenizer = load_tokenizer(model_args, load_args, trust_remote_code=args.trust_remote_code)
    return split_and_noise(data_args, tokenizer=tokenizer)[0]


def audited_train(sweep: SweepConfig, cell: Cell, data: dict[str, Path], cell_dir: Path) -> Path:
    """The cell's noisy training rows (noisy_train_rows), each with the verdict of `ls_llm.data.audit` (its final
    answer checked against the reference by math-verify) in `audit_status`, written to the cell folder."""
    noisy = noisy_train_rows(sweep, cell, data, cell_dir)
    verdicts = audit_rows(noisy, workers=1, progress=False)
    out = cell_dir / AUDITED_FILE
    write_jsonl(out, [{**row, "audit_status": status} for row, status in zip(noisy, verdicts.statuses, strict=True)])
    return out


def run_cell(sweep: SweepConfig, cell: Cell, data: dict[str, Path], *, root: Path) -> dict:
    """Train (or distill), evaluate, and write the cell's result.json; returns the result. The cell folder is
    locked while it runs: a second sweep reaching a cell that another one is running is refused (FolderLocked)."""
    with folder_lock(root / "cells" / cell.cell_id):
        if finished(sweep, root, cell):  # another process finished it while this one waited for it
            return _result_by_id(root, cell.cell_id)
        return _run_cell(sweep, cell, data, root=root)


def _run_cell(sweep: SweepConfig, cell: Cell, data: dict[str, Path], *, root: Path) -> dict:
    cell_dir = root / "cells" / cell.cell_id
    model_dir = cell_dir / "model"
    owner = (_result_by_id(root, cell.cell_id) or {}).get("sweep")
    if owner not in (None, sweep.name):  # sweeps share an output folder (its bases): never one's cell over another's
        raise RuntimeError(f"cell {cell.cell_id} in {str(root)!r} was made by sweep {owner!r}, with other settings: "
                           f"sweeps sharing an output folder need distinct cell ids (rename the variant in "
                           f"{sweep.name!r})")
    if cell_dir.exists():
        shutil.rmtree(cell_dir)  # an unfinished or stale earlier attempt
    cell_dir.mkdir(parents=True)
    by_id = {c.cell_id: c for c in sweep.cells()}
    for needed in cell.needs:
        if not finished(sweep, root, by_id[needed]):
            raise RuntimeError(f"cell {needed}, which {cell.cell_id} needs, has not finished")
    argv = _argv(sweep, cell, root)
    write_atomic(cell_dir / "argv.json", json.dumps(argv, indent=1) + "\n")
    made_from = fingerprint(sweep, cell, root)  # what the cell is made from: checked again once it has finished
    start = time.time()
    if cell.kind == TRACES_KIND:  # generated and audited (ls_llm.sweep.teacher_loop): no model of its own
        result = {"cell_id": cell.cell_id, **asdict(cell), "sweep": sweep.name, "fingerprint": made_from,
                  **run_traces(sweep, cell, data, root)}
        if fingerprint(sweep, cell, root) != made_from:
            raise RuntimeError(f"cell {cell.cell_id}: what it is made from changed while it ran: run the sweep again")
        write_atomic(cell_dir / RESULT_FILE, json.dumps({**result, "cell_seconds": round(time.time() - start, 1)},
                                                        indent=1) + "\n")
        return result
    if cell.kind == "train" and sweep.variant(cell.variant).audit:
        audited_train(sweep, cell, data, cell_dir)
    matching = teacher_model(sweep, cell, root)[1] if cell.kind == "distill" else None
    if cell.kind == "distill" and student_spec(sweep, cell).get("cache_top_k"):
        from ls_llm.trainers.run import build_cache_from_recipe

        build_cache_from_recipe(argv)
    train_cell(sweep.distill.command if cell.kind == "distill" else "train", argv,  # student: train
                _tracking(sweep, data, cell_dir, cell))
    train_s = time.time() - start
    curve = read_jsonl(cell_dir / TRACK_FILE) if (cell_dir / TRACK_FILE).is_file() else None
    if curve and cell.source:  # steps of a continued run count on from its source's last step
        offset = max((p["step"] for p in (_result_by_id(root, cell.source) or {}).get("curve") or []), default=0)
        curve = [{**p, "step": p["step"] + offset, "own_step": p["step"]} for p in curve]
    result = {"cell_id": cell.cell_id, **asdict(cell), "sweep": sweep.name, "fingerprint": made_from,
              **evaluation(sweep, model_dir, data, out_dir=cell_dir)}
    if cell.kind == BASE_KIND:  # and on its own corpus's validation split
        base_data = data_paths(root / BASE_DATA)
        result["pretrain_val_acc"] = accuracy(sweep, model_dir, VALIDATION_TASK, data=base_data,
                                               out=cell_dir / "eval_pretrain_validation")[0]
    if cell.kind == "train" and sweep.early_readings(cell.variant):  # early stopping: the best tracked step's model
        best = best_point(curve or [])
        if best is None or not (cell_dir / BEST_DIR).is_dir():
            raise RuntimeError(f"cell {cell.cell_id}: no tracked model with a validation accuracy was kept for its "
                               f"early-stopping reading {sweep.early_readings(cell.variant)}")
        result["early"] = {"step": best["step"], "tracked_val_acc": best["val_acc"],
                           **evaluation(sweep, cell_dir / BEST_DIR, data, out_dir=cell_dir / "early")}
    if fingerprint(sweep, cell, root) != made_from:
        raise RuntimeError(f"cell {cell.cell_id}: what it is made from changed while it ran (its recipe, a file it "
                           "reads, or the cell it starts from): run the sweep again to redo it")
    result.update({"train_seconds": round(train_s, 1), "cell_seconds": round(time.time() - start, 1)})
    result.update({k: v for k, v in (("curve", curve), ("matching", matching)) if v is not None})
    write_atomic(cell_dir / RESULT_FILE, json.dumps(result, indent=1) + "\n")
    return result


def finished(sweep: SweepConfig, root: Path, cell: Cell) -> bool:
    """The cell has a result made by what the sweep asks for now."""
    result = _result_by_id(root, cell.cell_id)
    return result is not None and result.get("fingerprint") == fingerprint(sweep, cell, root)


def run_sweep(sweep: SweepConfig, *, shard: tuple[int, int] = (0, 1), max_cells: int | None = None,
              only: set[str] | None = None) -> list[Cell]:
    """Run every unfinished cell of the shard; returns the cells that failed (logged, not raised, so one
    bad cell does not stop a 90-minute sweep; their folders stay for inspection)."""
    if only is not None and (unknown := sorted(only - {c.cell_id for c in sweep.cells()})):
        raise ValueError(f"--only: no cell {unknown[0]!r} in sweep {sweep.name!r} (see --list)")
    check_override_types(sweep)  # before any data is written or any cell runs
    root = Path(sweep.output_dir)
    data = prepare_data(sweep.data, root / "data", TEMPLATE)
    if sweep.bases is not None:
        prepare_data(sweep.bases.data, root / BASE_DATA, TEMPLATE)
    if sweep.traces is not None:
        prepare_data(sweep.traces.data, root / TEACHER_DATA, TEMPLATE)
    mine = [c for c in shard_cells(sweep, *shard) if only is None or c.cell_id in only]
    todo = sum(not finished(sweep, root, c) for c in mine)
    by_id = {c.cell_id: c for c in sweep.cells()}
    failed, ran = [], 0
    for cell in mine:
        # Checked now, not up front: re-running a stale cell makes the cells that start from it stale too.
        if finished(sweep, root, cell):
            continue
        if max_cells is not None and ran >= max_cells:
            break
        ran += 1
        logger.warning("sweep %s: cell %d/%d %s", sweep.name, ran, max(todo, ran), cell.cell_id)
        try:
            for base in (by_id[c] for c in cell.needs if by_id[c].kind == BASE_KIND):
                _ensure_base(sweep, base, data, root=root, failed=failed)
            with isolated_environ():
                run_cell(sweep, cell, data, root=root)
        except FolderLocked:
            if cell.kind == BASE_KIND:
                continue  # another shard is pretraining it; the cells that need it wait for it (_ensure_base)
            raise  # another sweep is running this cell: stop this one, naming it, rather than race it
        except (RuntimeError, ValueError, OSError, ImportError) as err:
            logger.error("sweep %s: cell %s failed: %s", sweep.name, cell.cell_id, err)
            failed.append(cell)
    return failed


BASE_WAIT_S = 15.0  # how often a cell waiting for a base that another shard is pretraining looks again


def _ensure_base(sweep: SweepConfig, base: Cell, data: dict[str, Path], *, root: Path, failed: list[Cell]) -> None:
    """Return once `base` has finished: pretrain it here, or wait while another process holds its lock. Raises
    (RuntimeError) when it failed, here or in this run before, so the cells that need it fail without retrying it."""
    if not finished(sweep, root, base) and base not in failed:
        logger.warning("sweep %s: the next cell fine-tunes %s: pretraining it (or waiting for the shard that is)",
                       sweep.name, base.cell_id)
    while not finished(sweep, root, base):
        if base in failed:
            raise RuntimeError(f"base {base.cell_id}, which this cell fine-tunes, failed")
        try:
            with isolated_environ():
                run_cell(sweep, base, data, root=root)
            if not finished(sweep, root, base):
                raise RuntimeError(f"base {base.cell_id} ran but is not finished: its inputs changed meanwhile")
        except FolderLocked:
            time.sleep(BASE_WAIT_S)
        except (RuntimeError, ValueError, OSError, ImportError) as err:
            logger.error("sweep %s: cell %s failed: %s", sweep.name, base.cell_id, err)
            failed.append(base)


def collect(sweep: SweepConfig) -> list[dict]:
    """The results of every finished cell of the sweep, in grid order; after each train cell, its early-stopping
    readings (variants with `early_stop_of`): the cell's result with the best tracked step's model's accuracies."""
    root = Path(sweep.output_dir)
    rows = []
    for cell in sweep.cells():
        if not finished(sweep, root, cell):
            continue
        result = _result_by_id(root, cell.cell_id)
        rows.append(result)
        for reading in sweep.early_readings(cell.variant) if cell.kind == "train" else ():
            rows.append(reading_row(result, reading))
    return rows
