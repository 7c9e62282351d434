#!/usr/bin/env bash
# The third study's registered sweeps, one after another on 2 cores (docs/results.md, "Third study"): E4 under
# perturb and box noise, E5, E6, each followed by its report. Resumable: run it again and finished cells are skipped.
#   sweeps/study3.sh            (about 7 h in all on 2 cores; the bases are pretrained once, by the first)
set -euo pipefail
for sweep in e4_perturb e4_box e5_teacher e6_teachers; do
  bash sweeps/run.sh "sweeps/$sweep.yaml" 2
done
