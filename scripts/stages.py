#!/usr/bin/env python3
"""The stage latency histograms of a run, from the daemons' /metrics.

  stages.py save URL... > FILE     the *_seconds histograms of every URL,
                                   summed by name (a gateway's processes)
  stages.py table BEFORE AFTER     a markdown table of what was counted
                                   between two saves: count, p50, p99, mean

A quantile is the upper bound of the bucket that holds it (the
histograms' buckets run 100 us to 10 s in 1-2.5-5 steps).
"""
import json
import re
import sys
import urllib.request

ORDER = ["comet_router_route_seconds", "comet_router_down_confirm_seconds",
         "comet_gateway_down_submit_seconds", "comet_gateway_write_queue_seconds",
         "comet_gateway_write_round_seconds", "comet_gateway_output_wait_seconds"]
LINE = re.compile(r'^(comet_\w+_seconds)_(bucket\{le="([^"]+)"\}|sum|count) (\S+)$')


def save(urls):
    hist = {}
    for url in urls:
        try:
            text = urllib.request.urlopen(url, timeout=10).read().decode()
        except OSError as e:
            print(f"stages: {url}: {e}", file=sys.stderr)
            continue
        for line in text.splitlines():
            m = LINE.match(line)
            if not m:
                continue
            h = hist.setdefault(m.group(1), {"buckets": {}, "sum": 0.0, "count": 0})
            v = float(m.group(4))
            if m.group(3) is not None:
                h["buckets"][m.group(3)] = h["buckets"].get(m.group(3), 0) + v
            elif m.group(2) == "sum":
                h["sum"] += v
            else:
                h["count"] += v
    json.dump(hist, sys.stdout, indent=1)


def quantile(buckets, count, q):
    """buckets: le -> cumulative count (with +Inf)."""
    rank = max(1, round(q * count))
    for le, c in sorted(buckets.items(), key=lambda kv: float(kv[0])):
        if c >= rank:
            return "> 10 s" if le == "+Inf" else fmt(float(le))
    return "?"


def fmt(s):
    return f"{s * 1e6:.0f} us" if s < 1e-3 else (f"{s * 1e3:g} ms" if s < 1 else f"{s:g} s")


def table(before, after):
    b, a = json.load(open(before)), json.load(open(after))
    print("| stage | counted | p50 at most | p99 at most | mean |")
    print("|---|---|---|---|---|")
    for name in ORDER + sorted(set(a) - set(ORDER)):
        if name not in a:
            continue
        h0 = b.get(name, {"buckets": {}, "sum": 0.0, "count": 0})
        h = a[name]
        count = h["count"] - h0["count"]
        if count <= 0:
            print(f"| {name} | 0 | | | |")
            continue
        buckets = {le: c - h0["buckets"].get(le, 0) for le, c in h["buckets"].items()}
        mean = (h["sum"] - h0["sum"]) / count
        print(f"| {name} | {count:.0f} | {quantile(buckets, count, 0.5)} | {quantile(buckets, count, 0.99)} | {fmt(mean)} |")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "save":
        save(sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "table":
        table(sys.argv[2], sys.argv[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
