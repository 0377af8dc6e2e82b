#!/usr/bin/env bash
# Mutation testing of the helpers' core and both training halves.
# Not part of CI: it takes over an hour on 2 busy cores.
#   tools/mutation.sh              run every mutant (results are kept in mutants/: a rerun resumes)
#   tools/mutation.sh "helpers.data.batching*"   only the mutants whose names match
# Then: `.venv/bin/mutmut results` lists the survivors, `.venv/bin/mutmut show NAME` shows one
# (a diff), `.venv/bin/mutmut browse` walks through them. Stop with Ctrl-C: finished mutants keep
# their result.
# Needs mutmut 3.8.1, which is not in requirements.txt: `.venv/bin/pip install mutmut==3.8.1`.
# What is mutated and which tests run: [tool.mutmut] in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
export BOOK_SCALE=smoke MPLBACKEND=Agg
# One thread per worker (two workers by default: MUTMUT_CHILDREN).
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false"  # see .ci/run
# mutmut puts mutants/ first on sys.path; an inherited PYTHONPATH must not shadow it.
unset PYTHONPATH
"$py" -m mutmut run --max-children "${MUTMUT_CHILDREN:-2}" "$@"
"$py" -m mutmut export-cicd-stats >/dev/null  # the score: killed, survived, total, ...
cat mutants/mutmut-cicd-stats.json
