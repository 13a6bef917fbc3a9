#!/usr/bin/env bash
# A kith bot in bash and jq: `kith bridge --json` as a coprocess, one
# protobuf-JSON object per line each way (proto/README.md, "Bots and slash
# commands"). It offers /ping, answered "pong" for the invoker alone, and,
# given CHANNEL_ID, says hello there first.
#
#   kith bot create Family pinger
#   kith --profile pinger login pinger --server HOST --token-stdin
#   KITH_PROFILE=pinger CHANNEL_ID=123 examples/bots/ping.sh
set -euo pipefail
KITH=${KITH:-kith}

coproc BRIDGE { "$KITH" bridge --json; }
send() { printf '%s\n' "$1" >&"${BRIDGE[1]}"; }

while IFS= read -r line <&"${BRIDGE[0]}"; do
  if jq -e '.reply.ready' >/dev/null <<<"$line"; then
    send '{"requestId":"1","registerCommands":{"commands":[{"name":"ping","description":"answers pong"}]}}'
    if [[ -n "${CHANNEL_ID:-}" ]]; then
      send "$(jq -nc --arg ch "$CHANNEL_ID" \
        '{requestId: "2", sendMessage: {channelId: $ch, body: "pinger is here: try /ping", nonce: "pinger-hello"}}')"
    fi
  elif jq -e '.reply.requestId == "1"' >/dev/null <<<"$line"; then
    echo "pinger: ready, offering /ping" >&2
  elif jq -e '.error' >/dev/null <<<"$line"; then
    echo "kith: $(jq -r '.error.reason' <<<"$line")" >&2
  elif call=$(jq -ec '.event.call // empty' <<<"$line"); then
    send "$(jq -nc --argjson call "$call" \
      '{requestId: "3", answerCall: {callId: $call.callId, text: "pong", final: true}}')"
  fi
done
