"""Summarise a collapsed py-spy profile: where the samples are, by function, inclusive.

    python -m bench.profile_summary PROFILE.txt [N]

Prints the N (default 25) functions present in the most samples (inclusive time), with
their share, skipping idle threads (waiting on a queue, a socket or a condition).
"""
from __future__ import annotations

import sys
from collections import Counter

IDLE = ("wait (threading.py", "get (queue.py", "select (selectors.py", "_wait_for_tstate_lock", "sleep",
        "poll (selectors.py", "read (socket.py", "accept (socket.py", "_wait (dramatiq")


def main(path: str, n: int = 25) -> None:
    inclusive: Counter = Counter()
    total = 0
    for line in open(path):
        stack, _, count = line.rstrip().rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if frames and any(idle in frames[-1] for idle in IDLE):
            continue
        total += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    print(f"{total} busy samples")
    for frame, count in inclusive.most_common(n):
        print(f"{count / total * 100:5.1f}%  {frame[:150]}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25)
