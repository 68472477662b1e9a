#!/usr/bin/env python3
"""Interleaved wall-clock timing for the POST benchmark (scripts/bench.sh).

    interleave.py ROUNDS LABEL=COMMAND...   (COMMAND split like a shell line; the first is the 1.00x)

Every round runs each command once, in an order rotated from round to round, so a load that comes
and goes (other builds on a 2-core machine) falls on all of them alike; hyperfine runs one command's
runs back to back instead. Prints per command the median wall time, the median of its per-round
ratios to the first command (each ratio taken within one round) and the middle half of those ratios.
Two warm-up rounds are not counted. Output goes to /dev/null; exit statuses are not checked (post
exits 1 on findings).
"""
import os
import shlex
import statistics
import sys
import time

rounds = int(sys.argv[1])
labels, commands = [], []
for arg in sys.argv[2:]:
    label, _, command = arg.partition("=")
    labels.append(label)
    commands.append(shlex.split(command))
null = os.open(os.devnull, os.O_RDWR)
actions = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)]
times = [[] for _ in commands]
for r in range(rounds + 2):
    shift = r % len(commands)
    for i in list(range(len(commands)))[shift:] + list(range(len(commands)))[:shift]:
        start = time.perf_counter()
        pid = os.posix_spawnp(commands[i][0], commands[i], os.environ, file_actions=actions)
        os.waitpid(pid, 0)
        if r >= 2:
            times[i].append(time.perf_counter() - start)
for i, label in enumerate(labels):
    ratios = sorted(t / b for t, b in zip(times[i], times[0]))
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    print(f"  {label:50s} {statistics.median(times[i]) * 1000:7.1f} ms   "
          f"({statistics.median(ratios):.3f}x, middle half {q[0]:.3f}-{q[2]:.3f})")
