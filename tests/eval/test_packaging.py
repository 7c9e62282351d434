"""The wheel ships the evaluation tasks: build it, install it into a fresh virtual environment outside the
checkout and list the tasks from there (offline: no build isolation, ``--no-deps``; the fresh environment
sees this environment's packages through a .pth line, not its editable ls_llm)."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "ls_llm", "eval/tasks")


# Nothing of the checkout may leak into the fresh environment: no PYTHONPATH, no task-folder override.
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LS_LLM_EVAL_TASKS")}
ENV["HF_DATASETS_OFFLINE"] = ENV["HF_HUB_OFFLINE"] = "1"


def _run(*cmd, cwd):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=ENV, capture_output=True, text=True, check=True)


def test_wheel_installed_outside_the_checkout_lists_the_tasks(tmp_path):
    src = tmp_path / "src"  # a copy, so the build's build/ and egg-info stay out of the checkout
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist",
         src, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("ls_llm-*.whl"))

    venv = tmp_path / "fresh"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path).stdout.strip())
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel, cwd=tmp_path)
    # Then lm-eval, math-verify, ... from this environment (after the install, so pip does not see this
    # environment's ls_llm as already installed). Its editable ls_llm is not picked up: the .pth files of
    # a directory added this way are not processed.
    (purelib / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")

    where = _run(python, "-c", "import ls_llm; print(ls_llm.__file__)", cwd=tmp_path).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    listed = _run(venv / "bin" / "ls-llm", "eval", "tasks", cwd=tmp_path).stdout
    folder = Path(listed.splitlines()[0].removeprefix("task folder: "))
    assert folder.is_relative_to(venv) and folder.name == "tasks", listed
    assert "suites: ls_math, ls_ood" in listed
    tasks = next(line for line in listed.splitlines() if line.startswith("tasks: ")).removeprefix("tasks: ").split(", ")
    # lm-eval's own CLI is pointed at the installed copy of the tasks
    assert f"--include_path {folder} " in listed, listed
    assert tasks == sorted(["aime24", "aime25", "amc23", "math500", "minerva_math", "olympiadbench",
                            "arc_challenge", "gpqa_diamond", "mmlu_pro"]), listed
    shipped = sorted(p.name for p in folder.iterdir() if p.is_file())
    assert shipped == sorted(p.name for p in (ROOT / "eval" / "tasks").iterdir() if p.is_file() and p.suffix != ".pyc")
