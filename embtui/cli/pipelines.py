"""`embtui pipelines`: make, list and remove retrieval pipelines (hybrid fusion, rerank cascades)."""

from __future__ import annotations

import argparse
from typing import Any

from embtui.cli.output import open_store, print_json, table
from embtui.errors import EmbtuiError


def cmd_pipelines(args: argparse.Namespace) -> int:
    from embtui.api.pipelines import list_pipelines, make_pipeline

    store = open_store(args)
    if args.action == "add":
        if not args.retrieve:
            raise EmbtuiError("`pipelines add` needs at least one --retrieve MODEL")
        existed = store.get_model(args.name or "") is not None
        spec = make_pipeline(store, args.name, args.retrieve, fuse=args.fuse, depth=args.depth,
                             rerank=args.rerank or (), rerank_depth=args.rerank_depth or (),
                             cross_encoder=args.cross_encoder or (), replace=args.replace)
        from embtui.api.pipelines import Pipeline

        print(f"{'replaced' if existed else 'saved'} pipeline '{spec.name}': "
              f"{Pipeline.from_dict(spec.pipeline or {}).describe()}")
        return 0
    if args.action == "remove":
        if args.name not in list_pipelines(store):
            raise EmbtuiError(f"no saved pipeline named '{args.name}'", "see `embtui pipelines`")
        store.delete_model(args.name)
        print(f"removed pipeline '{args.name}'")
        return 0
    pipes = list_pipelines(store)
    if args.json:
        print_json({"pipelines": [{"name": n, "describe": p.describe(), **p.to_dict()} for n, p in pipes.items()]})
        return 0
    if not pipes:
        print("no pipelines: make one with `embtui pipelines add NAME --retrieve bm25 "
              "--retrieve all-MiniLM-L6-v2 --fuse rrf`")
        return 0
    print(table(["name", "stages"], [[n, p.describe()] for n, p in pipes.items()]))
    return 0


def add_commands(sub: Any) -> None:
    """Register `pipelines`."""
    p = sub.add_parser("pipelines", help="make, list or remove retrieval pipelines (fusion, rerankers)",
                       description="A pipeline is evaluated like a model: `embtui eval --model NAME`.")
    p.add_argument("action", nargs="?", choices=["list", "add", "remove"], default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("--retrieve", action="append", metavar="MODEL",
                   help="a first-stage model (saved name, hub id, path or bm25); repeat to fuse")
    p.add_argument("--fuse", metavar="rrf[:K]|weighted:W1,W2",
                   help="how to fuse several first stages (reciprocal rank fusion, k=60 by default)")
    p.add_argument("--depth", type=int, help="candidates per first-stage model (default: 1000 when "
                   "fusing, else the first reranker's depth)")
    p.add_argument("--rerank", action="append", metavar="MODEL",
                   help="rescore the candidates with this bi-encoder (encodes only the candidates)")
    p.add_argument("--cross-encoder", action="append", metavar="MODEL",
                   help="rescore the candidates with a sentence-transformers CrossEncoder")
    p.add_argument("--rerank-depth", action="append", type=int, metavar="N",
                   help="candidates each reranker rescores, in order (default 100)")
    p.add_argument("--replace", action="store_true", help="overwrite a saved pipeline or model of that name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_pipelines)
