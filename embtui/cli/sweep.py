"""`embtui sweep`: one model over a grid of truncations, int8/binary codes, rescoring and HNSW
breadth, or a pipeline over its reranker's depth, every point a run made from one encoding (see
embtui/api/sweeps.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from embtui.cli.output import ProgressLine, open_store, print_json, table
from embtui.errors import EmbtuiError


def _ints(text: str | None, what: str) -> list[int]:
    if not text:
        return []
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise EmbtuiError(f"{what} '{text}' must be whole numbers, comma-separated", f"e.g. {what} 256,128") from None


def _efs(text: str | None) -> list[int | None]:
    """--hnsw-ef values; ``exact`` among them keeps the exact point as well."""
    if not text:
        return [None]
    parts = [x.strip() for x in text.split(",") if x.strip()]
    return [None if x.lower() == "exact" else _ints(x, "--hnsw-ef")[0] for x in parts] or [None]


def cmd_sweep(args: argparse.Namespace) -> int:
    from embtui.api.sweeps import plan_sweep, sweep_points, sweep_rows

    precisions = [p.strip() for p in (args.precision or "float32").split(",") if p.strip()]
    points = sweep_points(_ints(args.truncate_dim, "--truncate-dim") or [None], precisions,
                          _ints(args.rescore, "--rescore") or [1], _efs(args.hnsw_ef),
                          _ints(args.depth, "--depth"))
    store = open_store(args, create=False)
    plan = plan_sweep(store, args.project, args.model, points, split=args.split, force=args.force,
                      device=args.device)
    if args.detach:  # one job per point; jobs take turns on a device, so all but the first read the cache
        from embtui.cli.jobs import detach_eval

        if not plan.todo:
            print("every point has an identical finished run (pass --force to run them again)")
            return 0
        return detach_eval(plan, args)
    from embtui.api.evaluations import run_inline

    show = sys.stderr.isatty() and not args.json
    n = len(plan.items)
    outcomes = run_inline(plan, lambda i, req: ProgressLine(show, f"[{i + 1}/{n}] {req.model.name}"))
    rows = sweep_rows(points, outcomes)
    if args.json:
        print_json({"runs": rows})
        return 0
    depth = any(p.depth for p in points)
    extra = (["cand_recall"] if depth else
             ["ann_r@10", "index_B/doc"] if any(r["ann_recall@10"] is not None for r in rows) else [])

    def more(r: dict[str, Any]) -> list[Any]:
        if depth:
            return ["" if r["candidate_recall"] is None else f"{r['candidate_recall']:.4f}"]
        if not extra:
            return []
        return ["" if r["ann_recall@10"] is None else f"{r['ann_recall@10']:.3f}", r["index_bytes_per_doc"] or ""]

    print(table(["run", "point", "ndcg@10", "recall@100", "retention", "bytes/doc", *extra, "encoded", "time_s"],
                [[r["id"], r["model"], f"{r['metrics'].get('ndcg@10', float('nan')):.4f}",
                  f"{r['metrics'].get('recall@100', float('nan')):.4f}",
                  f"{r['retention']['ndcg@10']:.3f}" if r["retention"] and "ndcg@10" in r["retention"] else "",
                  r["bytes_per_doc"] or "", *more(r), "" if r["documents_encoded"] is None else r["documents_encoded"],
                  f"{r['seconds']:.1f}" if r["seconds"] is not None else ""] for r in rows]))
    return 0


def add_commands(sub: Any) -> None:
    """Register `sweep`."""
    p = sub.add_parser("sweep", help="evaluate one model over truncations, int8/binary codes, rescoring, "
                                     "HNSW breadth, or a pipeline over its reranker's depth",
                       description="Every point is a run; one encoding serves them all. The full "
                                   "float32 point always runs first: the others' retention is against it. "
                                   "With --depth (a pipeline with a rerank stage) the deepest point runs "
                                   "first and the others read its candidates' vectors from the cache.")
    p.add_argument("--project", required=True)
    p.add_argument("--model", required=True, help="saved spec name, hub id or local path")
    p.add_argument("--split")
    p.add_argument("--device")
    p.add_argument("--truncate-dim", metavar="D1,D2,...", help="dimensions to keep, e.g. 384,256,128,64")
    p.add_argument("--precision", metavar="P1,P2,...", help="float32, int8, binary (default float32)")
    p.add_argument("--rescore", metavar="M1,M2,...", help="rescoring multipliers for int8/binary, e.g. 1,4")
    p.add_argument("--hnsw-ef", metavar="EF1,EF2,...",
                   help="HNSW expansion_search values (float32: a float index; int8/binary: a USearch "
                        "i8/b1 index over the codes); 'exact' keeps exact points too, e.g. exact,64")
    p.add_argument("--depth", metavar="D1,D2,...",
                   help="rerank depths for a pipeline with a rerank stage (its last one), e.g. 20,50,100")
    p.add_argument("--force", action="store_true", help="new runs even where identical ones exist")
    p.add_argument("--detach", action="store_true", help="one background job per point")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sweep)
