"""`embtui profile`: a model's latency, throughput and memory on the project's own texts, and what
a corpus of N documents would cost (see embtui/engine/profile.py for what is measured and assumed)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from embtui.cli.output import open_store, print_json, table


def cmd_profile(args: argparse.Namespace) -> int:
    from embtui.api.profiles import parse_count, run_profile

    from embtui.cli.models import spec_overrides

    n_docs = parse_count(args.docs) if args.docs else None
    store = open_store(args, create=False)
    say = (lambda msg: print(f"… {msg}", file=sys.stderr)) if sys.stderr.isatty() and not args.json else None
    prof = run_profile(store, args.project, args.model, device=args.device, overrides=spec_overrides(args),
                       progress=say, n_queries=args.queries, max_docs=args.max_docs)
    cost = prof.cost(n_docs) if n_docs else None
    if args.json:
        print_json({"profile": prof.to_dict(), "cost": cost})
        return 0
    lat = prof.latency_ms
    if prof.busy_machine:
        print(f"warning: the machine was busy (load average {prof.load_average}); the latencies below "
              "include waiting for the CPU: profile again when it is quiet", file=sys.stderr)
    print(f"{prof.model} on {prof.device} ({prof.precision}), {prof.documents:,} documents of '{args.project}'")
    print(f"load {prof.load_s:.2f} s, +{prof.load_rss_mb:.0f} MB resident"
          + (f", {prof.gpu_mb:.0f} MB on the GPU" if prof.gpu_mb else ""))
    what = "tokenize + score every document" if prof.kind == "bm25" else "encode + search"
    print(f"single query end to end ({what}, top 10): p50 {lat['p50']:.2f} ms, "
          f"p95 {lat['p95']:.2f} ms, p99 {lat['p99']:.2f} ms over {lat['n']} queries")
    if prof.encode:
        print(table(["batch", "docs/s", "queries/s"],
                    [[bs, prof.encode["documents"].get(bs, ""), prof.encode["queries"].get(bs, "")]
                     for bs in prof.encode["documents"]]))
    print(table(["stored as", "bytes/doc"], [[k, f"{v:g}"] for k, v in prof.bytes_per_doc.items()]))
    if cost:
        rows = []
        if "encode_hours" in cost:
            rows.append(["encode (this device)", f"{cost['encode_hours']:.2f} h"])
        rows += [[f"memory, {k}", f"{v:.2f} GB"] for k, v in cost["memory_gb"].items()]
        if "exact_ms" in cost:
            rows.append(["exact search / query", f"{cost['exact_ms']:.1f} ms ({cost['exact_ms_note']})"])
        if "hnsw_ms" in cost:
            rows.append(["HNSW search / query", f"{cost['hnsw_ms']:.2f} ms ({cost['hnsw_ms_note']})"])
        print(f"\nat {cost['documents']:,} documents (extrapolated from {cost['measured_at']:,}):")
        print(table(["", ""], rows))
    return 0


def add_commands(sub: Any) -> None:
    """Register `profile`."""
    from embtui.cli.models import add_spec_options

    p = sub.add_parser("profile", help="measure a model's latency, throughput and memory on a project")
    p.add_argument("--project", required=True)
    p.add_argument("--model", required=True, help="saved spec name, hub id, local path or bm25")
    p.add_argument("--device")
    p.add_argument("--queries", type=int, default=200, help="single queries timed (after 10 warm-up ones)")
    p.add_argument("--max-docs", type=int, metavar="N",
                   help="profile on the first N documents (faster for big models; the cost model extrapolates)")
    p.add_argument("--docs", metavar="N", help="also estimate the cost at N documents, e.g. 10M")
    p.add_argument("--json", action="store_true")
    add_spec_options(p)
    p.set_defaults(func=cmd_profile)
