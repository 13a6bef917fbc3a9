#!/usr/bin/env python3
"""A kith bot in Python with nothing but the standard library.

It talks to the server through `kith bridge --json`: one object per line in
the standard protobuf JSON mapping, both ways (proto/README.md, "Bots and
slash commands", says what to send). No QUIC library, no generated code.

    kith bot create Family helper                        # prints the bot's token
    kith --profile helper login helper --server HOST --token-stdin
    KITH_PROFILE=helper python3 examples/bots/echo.py

Then anyone in Family runs `/echo hello` (answered in the channel, for
everyone) or `/countdown 3` (progress, then an answer for them alone).
"""

import json
import os
import subprocess
import sys

# The kith program to run the bridge with.
KITH = os.environ.get("KITH", "kith")

COMMANDS = [
    {
        "name": "echo",
        "description": "says it back, for everyone",
        "options": [
            {"name": "text", "description": "what to say", "type": "OPTION_TYPE_STRING", "required": True},
        ],
    },
    {
        "name": "countdown",
        "description": "counts down, then lifts off",
        "options": [
            {"name": "n", "description": "where to start", "type": "OPTION_TYPE_INTEGER", "required": True},
        ],
    },
]


class Bridge:
    """`kith bridge --json` as a child process: requests out, messages in."""

    def __init__(self):
        self.child = subprocess.Popen(
            [KITH, "bridge", "--json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.next_id = 0

    def send(self, kind, body):
        """Sends one request; returns its id (its answer carries the same)."""
        self.next_id += 1
        line = json.dumps({"requestId": str(self.next_id), kind: body})
        self.child.stdin.write(line + "\n")
        self.child.stdin.flush()
        return self.next_id

    def messages(self):
        for line in self.child.stdout:
            yield json.loads(line)


def option(call, name):
    """The value the invoker gave option `name` (int64s arrive as strings)."""
    for o in call.get("options", []):
        if o["name"] == name:
            for kind in ("string", "integer", "boolean"):
                if kind in o:
                    return o[kind]
    return None


def answer(bridge, call):
    call_id = call["callId"]
    if call["name"] == "echo":
        text = option(call, "text")
        bridge.send("answerCall", {"callId": call_id, "text": text, "final": True, "public": True})
    elif call["name"] == "countdown":
        n = int(option(call, "n"))
        if n < 0 or n > 100:
            bridge.send("answerCall", {"callId": call_id, "error": "pick a number from 0 to 100"})
            return
        for i in range(n, 0, -1):
            bridge.send("answerCall", {"callId": call_id, "text": str(i)})
        bridge.send("answerCall", {"callId": call_id, "text": "liftoff", "final": True})


def main():
    bridge = Bridge()
    registered = None
    for message in bridge.messages():
        reply = message.get("reply")
        if reply and "ready" in reply:
            me = reply["ready"]["user"]["username"]
            registered = bridge.send("registerCommands", {"commands": COMMANDS})
        elif reply and int(reply["requestId"]) == registered:
            print(f"{me}: ready, offering /echo and /countdown", file=sys.stderr, flush=True)
        elif "error" in message:
            print(f"kith: {message['error'].get('reason', '')}", file=sys.stderr, flush=True)
        elif "call" in message.get("event", {}):
            answer(bridge, message["event"]["call"])
    return bridge.child.wait()


if __name__ == "__main__":
    sys.exit(main())
