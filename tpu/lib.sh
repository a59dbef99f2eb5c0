# shellcheck shell=bash
# Helpers sourced by the jcnn launch scripts in this folder (not run on its own).

# DRY_RUN=1, or --dry-run anywhere among a script's arguments (`take_dry_run`), prints
# every command that would change something, shell-quoted, instead of running it.
DRY_RUN="${DRY_RUN:-0}"

# take_dry_run ARGS...: DRY_RUN=1 when --dry-run is among ARGS; the other arguments,
# in order, go to the array REST (a script then runs: set -- "${REST[@]+"${REST[@]}"}").
take_dry_run() {
  REST=()
  local a
  for a in "$@"; do
    if [[ "$a" == --dry-run ]]; then
      DRY_RUN=1
    else
      REST+=("$a")
    fi
  done
}

# The JAX versions jcnn supports (pyproject.toml); the launch scripts install JAX in this range.
# shellcheck disable=SC2034  # used by the scripts that source this file
JAX_RANGE=">=0.10,<0.13"

die() {
  echo "$(basename "$0"): error: $*" >&2
  exit 2
}

# need VAR...: every named variable must be set and non-empty.
need() {
  local name
  for name in "$@"; do
    [[ -n "${!name:-}" ]] || die "set $name (see tpu/README.md)"
  done
}

# shell_word ARG: ARG as is when it is plain, else in single quotes (newlines kept, so
# a printed remote script stays readable and can be pasted back into a shell).
shell_word() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# quote ARG...: the arguments as one shell-quoted string, for a command run remotely.
quote() {
  local arg sep=""
  for arg in "$@"; do
    printf '%s' "$sep"
    shell_word "$arg"
    sep=" "
  done
}

# run CMD ARG...: runs the command, or prints it under DRY_RUN=1.
run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '+ %s\n' "$(quote "$@")"
  else
    "$@"
  fi
}

# archive_sources ROOT ARCHIVE: the jcnn checkout ROOT as a .tar.gz: the committed tree
# plus uncommitted changes to tracked files (`git stash create` makes a commit object
# without touching any branch, stash or file; a dry run shows HEAD and writes nothing);
# untracked and ignored files (.venv, runs/) stay behind.
archive_sources() {
  local root="$1" archive="$2" ref=""
  [[ "$DRY_RUN" == 1 ]] || ref="$(git -C "$root" stash create)"
  run git -C "$root" archive --format=tar.gz -o "$archive" "${ref:-HEAD}"
}

# check_remote_dir: REMOTE_DIR must name a directory under the home (it is replaced on
# every setup): not empty, not absolute, without . or .. components.
check_remote_dir() {
  case "/$REMOTE_DIR/" in
    //* | */./* | */../*) die "REMOTE_DIR must be a path under the home, got '$REMOTE_DIR'" ;;
  esac
}

# remote_install JAX_REQ: the commands run on each worker to install jcnn from
# ~/jcnn.tar.gz: sources in ~/REMOTE_DIR, a virtualenv ~/VENV made with PYTHON (installed
# with apt when it cannot make one), jcnn editable and JAX_REQ in it, and Fashion-MNIST
# from apt when FASHION_MNIST=1. The sources replace those of an earlier setup, so files
# deleted from the repo go too; runs/ and data/ in it stay (run.sh's default WORKDIR is
# runs/tpu there). A ~/REMOTE_DIR that holds something other than a jcnn checkout is
# left alone and the install stops.
remote_install() {
  local py src env_dir
  py="$(quote "$PYTHON")"
  src="$(quote "$REMOTE_DIR")"
  env_dir="$(quote "$VENV")"
  cat <<SCRIPT
set -e
cd ~
if ! $py -c 'import ensurepip' 2>/dev/null; then
  sudo apt-get update -qq && sudo apt-get install -y -qq $py $py-venv
fi
if [ -e $src ] && ! grep -qs '^name = "jcnn"' $src/pyproject.toml &&
  [ -n "\$(find $src -mindepth 1 -maxdepth 1 ! -name runs ! -name data)" ]; then
  echo "not replacing" ~/$src": it is not a jcnn checkout (set REMOTE_DIR)" >&2
  exit 1
fi
mkdir -p $src
find $src -mindepth 1 -maxdepth 1 ! -name runs ! -name data -exec rm -rf {} +
tar -xzf jcnn.tar.gz -C $src
$py -m venv $env_dir
$env_dir/bin/pip install -q -U pip
$env_dir/bin/pip install -q -e ./$src $(quote "$1")
SCRIPT
  if [[ "${FASHION_MNIST:-1}" == 1 ]]; then
    cat <<'SCRIPT'
sudo apt-get install -y -qq dataset-fashion-mnist ||
  echo 'dataset-fashion-mnist not installed: jcnn will fall back to scikit-learn digits'
SCRIPT
  fi
  echo "$env_dir/bin/python -c 'import jax, jcnn; print(\"jcnn\", jcnn.__version__, \"jax\", jax.__version__)'"
}
