#!/usr/bin/env bash
# The network-namespace "hosts" of the fleet's multi-host runs (tests/controlplane/
# fleet_netns_test.sh, bench/scenarios/h_fleet_ha.sh): one namespace per node, each with a
# veth to a bridge in a hub namespace, addresses from the caller's IP map. Nothing outside
# the namespaces made here is touched. Source it after setting TAG (unique per run),
# NODES (node names) and IP (associative: node -> address in one /24); then netns_up, and
# netns_down in the caller's cleanup.
HUB="llmgw-$TAG-hub"
ns() { echo "llmgw-$TAG-$1"; }

# The hub's bridge and a namespace per node; IF_<node> names the node's interface.
netns_up() {
  local n k=0
  ip netns add "$HUB"
  ip -n "$HUB" link add br0 type bridge
  ip -n "$HUB" link set br0 up
  for n in "${NODES[@]}"; do
    ip netns add "$(ns "$n")"
    ip -n "$(ns "$n")" link set lo up
    ip link add "h$TAG$k" type veth peer name "e$TAG$k"
    ip link set "h$TAG$k" netns "$HUB"
    ip link set "e$TAG$k" netns "$(ns "$n")"
    ip -n "$HUB" link set "h$TAG$k" master br0 up
    ip -n "$(ns "$n")" addr add "${IP[$n]}/24" dev "e$TAG$k"
    ip -n "$(ns "$n")" link set "e$TAG$k" up
    declare -g "IF_$n=e$TAG$k"
    k=$((k + 1))
  done
}

# Kills anything still running in the namespaces (by pid, as ip netns pids lists them)
# and deletes them; safe to call when netns_up did not finish.
netns_down() {
  local n p
  for n in "${NODES[@]}"; do
    for p in $(ip netns pids "$(ns "$n")" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  done
  for n in "${NODES[@]}"; do ip netns del "$(ns "$n")" 2>/dev/null || true; done
  ip netns del "$HUB" 2>/dev/null || true
}

# For foreground commands only: a function run with & is a subshell whose $! is not the
# process's (a cleanup could not stop it), so background processes use ip netns exec.
in_ns() { local n="$1"; shift; ip netns exec "$(ns "$n")" "$@"; }
