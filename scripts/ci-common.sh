# Shared helpers for the CI scripts (sourced, not run).

# apt-get update once per CI run, then install only the packages that are missing, retrying
# transient network failures.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ -z "${SEPCONV_APT_UPDATED:-}" ]; then
    for i in 1 2 3; do $sudo apt-get update -q && break; sleep $((i * 10)); done
    export SEPCONV_APT_UPDATED=1
  fi
  for i in 1 2 3; do
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" && return 0
    sleep $((i * 10))
  done
  echo "apt-get install ${missing[*]} failed" >&2
  return 1
}
