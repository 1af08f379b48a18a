#!/usr/bin/env python3
"""Issue 10's many-core checks, read from the tables scripts/multicore.sh
writes (rooms.txt, hot-room.txt, axum.txt in OUT_DIR):

  1. 8 rooms: T=max delivers >= 0.75 x T=max times the messages of T=1
     (6x at T=8, the issue's figure), each server variant;
  2. one hot room: T=max >= T=1 (the issue aims for 2x), every N x M;
  3. the hot room at T=max >= 2x axum's chat at T=max (50-message batches);
  4. server CPU per message at T=max <= 1.3x that at T=1 (1. and 2.).

usage: scripts/multicore_checks.py OUT_DIR
Prints one line per check and exits 1 if any fails, 2 if a table is
missing or has no usable rows (say, a run that stalled).
"""

import statistics
import sys
from pathlib import Path


def rate(cell):
    """'14.85M' -> 14.85e6; 'no result' -> None."""
    cell = cell.strip()
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}
    try:
        if cell and cell[-1] in scale:
            return float(cell[:-1]) * scale[cell[-1]]
        return float(cell)
    except ValueError:
        return None


def rows(path):
    """The rows of every markdown table in `path`, as dicts by header."""
    header, out = None, []
    for line in path.read_text().splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not set("".join(cells)) <= set("-: "):
            out.append(dict(zip(header, cells)))
    return out


def by_threads(table):
    """{(server, N, M): {T: (msgs/s, ns per message)}} from a multicore table."""
    out = {}
    for r in table:
        key = (r["server"], r["N per room"], r["M"])
        ns = r["server CPU per msg"].split()[0]
        out.setdefault(key, {})[int(r["T"])] = (rate(r["msgs/s"]), float(ns))
    return out


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    try:
        rooms = by_threads(rows(out / "rooms.txt"))
        hot = by_threads(rows(out / "hot-room.txt"))
        axum_rows = rows(out / "axum.txt")
    except (OSError, KeyError, ValueError) as e:
        print(f"checks: cannot read the tables in {out}: {e}", file=sys.stderr)
        return 2
    if not rooms or not hot:
        print(f"checks: no rows in {out}/rooms.txt or hot-room.txt", file=sys.stderr)
        return 2

    results = []

    def check(name, ok, detail):
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")

    def scaling(label, table, needed):
        """`needed(t_max)`: the least T=max / T=1 ratio that passes."""
        for (server, n, m), by_t in sorted(table.items()):
            t_max = max(by_t)
            if 1 not in by_t or t_max == 1 or not by_t[1][0] or not by_t[t_max][0]:
                check(f"{label} {server} {n} x {m}", False, "no T=1 / T=max pair")
                continue
            (r1, c1), (rt, ct) = by_t[1], by_t[t_max]
            least = needed(t_max)
            check(f"{label} {server} {n} x {m}, T={t_max} / T=1", rt / r1 >= least,
                  f"{rt / r1:.2f}x the messages (needs >= {least:g}x)")
            check(f"{label} {server} {n} x {m}, CPU per message", ct / c1 <= 1.3,
                  f"{c1:.0f} -> {ct:.0f} ns, {ct / c1:.2f}x (needs <= 1.3x)")
        return max(t for by_t in table.values() for t in by_t)

    scaling("8 rooms", rooms, lambda t: 0.75 * t)
    t_max = scaling("hot room", hot, lambda t: 1.0)

    axum = {}
    for r in axum_rows:
        value = rate(r.get("msgs/s (median second)", ""))
        if value is not None:
            axum.setdefault((int(r["T"]), r["clients"]), []).append(value)
    for n in ("16", "32"):
        wshub = hot.get(("wshub", n, "50"), {}).get(t_max, (None, None))[0]
        theirs = axum.get((t_max, n))
        if not wshub or not theirs:
            check(f"hot room {n} x 50 vs axum at T={t_max}", False, "missing figures")
            continue
        median = statistics.median(theirs)
        check(f"hot room {n} x 50 vs axum at T={t_max}", wshub >= 2 * median,
              f"{wshub / 1e6:.2f}M against {median / 1e6:.2f}M, {wshub / median:.2f}x (needs >= 2x)")

    failed = results.count(False)
    print(f"checks: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
