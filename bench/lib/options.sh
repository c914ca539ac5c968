#!/usr/bin/env bash
# The scenarios' command-line parsing (bench_options), shared by bench/lib/common.sh and
# the scenarios that do not source it (h_fleet_ha.sh runs its own processes in namespaces).

# bench_options SPEC... -- "$@": the scenario's command line, declared once. SPEC words,
# in the order the usage line lists them:
#   --name=VAR:META    an option with a value, stored in VAR ("[--name META]")
#   --name:ASSIGN...   a flag that makes the assignments, e.g. "--long:ROUNDS=7 DUR=10"
# Anything else (or an option without its value) prints the usage line and exits 2.
bench_options() {
  local -a _specs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do _specs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  local _usage="" _s _head _a _hit
  for _s in "${_specs[@]}"; do
    _head=${_s%%:*}
    if [[ $_head == *=* ]]; then _usage+=" [${_head%%=*} ${_s#*:}]"; else _usage+=" [$_head]"; fi
  done
  while [ $# -gt 0 ]; do
    _hit=0
    for _s in "${_specs[@]}"; do
      _head=${_s%%:*}
      if [[ $_head == *=* ]]; then
        [ "$1" = "${_head%%=*}" ] && [ $# -ge 2 ] || continue
        printf -v "${_head#*=}" '%s' "$2"
        shift
      else
        [ "$1" = "$_head" ] || continue
        for _a in ${_s#*:}; do printf -v "${_a%%=*}" '%s' "${_a#*=}"; done
      fi
      _hit=1
      break
    done
    [ "$_hit" = 1 ] || { echo "usage: $0${_usage}" >&2; exit 2; }
    shift
  done
}
