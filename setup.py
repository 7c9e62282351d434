"""Build step only (all metadata is in pyproject.toml): ship the task YAMLs of eval/tasks in the wheel.

eval/tasks stays the one place the tasks are written and read in the repository; building a wheel copies
it to ls_llm/evaluation/tasks, where ls_llm.evaluation.config.default_tasks_dir finds it in an install
that is not a checkout.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TASKS = Path(__file__).resolve().parent / "eval" / "tasks"


class BuildPyWithTasks(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return  # an editable install reads eval/tasks in place
        target = Path(self.build_lib) / "ls_llm" / "evaluation" / "tasks"
        shutil.copytree(TASKS, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithTasks})
