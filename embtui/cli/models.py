"""`embtui models` and `embtui devices`: saved model specs, and where they can run."""

from __future__ import annotations

import argparse
from typing import Any

from embtui.cli.output import open_store, print_json, table
from embtui.errors import EmbtuiError


def spec_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The model options given on the command line (None: keep the saved spec's)."""
    return {
        "batch_size": args.batch_size, "precision": args.precision,
        "max_seq_length": args.max_length, "query_prompt": args.query_prompt,
        "document_prompt": args.doc_prompt, "query_prompt_name": args.query_prompt_name,
        "document_prompt_name": args.doc_prompt_name, "truncate_dim": args.truncate_dim,
        "trust_remote_code": True if args.trust_remote_code else None,
        "normalize": False if getattr(args, "no_normalize", False) else None,
        "quantize": getattr(args, "quantize", None), "rescore": getattr(args, "rescore", None),
    }


def cmd_models(args: argparse.Namespace) -> int:
    from embtui.api.models import ModelSpec, check_model_name

    store = open_store(args)
    if args.action == "add":
        if not args.name:
            raise EmbtuiError("`models add` needs a NAME", "e.g. `embtui models add e5 --model intfloat/e5-small-v2`")
        existing = store.get_model(args.name)
        if existing is not None and not args.replace:
            raise EmbtuiError(f"a model named '{args.name}' is already saved ({existing.get('model')})",
                              "pass --replace to overwrite it, or choose another NAME")
        spec = ModelSpec(model=args.model or args.name, name=args.name,
                         revision=args.revision).with_overrides(**spec_overrides(args),
                                                                device=args.device)
        check_model_name(spec, store)  # a wrong path or unknown id fails now, not in a run
        store.save_model(spec.name, spec.to_dict())
        print(f"{'replaced' if existing else 'saved'} model '{spec.name}' ({spec.model})")
        return 0
    if args.action == "remove":
        if store.get_model(args.name) is None:
            raise EmbtuiError(f"no saved model named '{args.name}'", "see `embtui models`")
        store.delete_model(args.name)
        print(f"removed model '{args.name}'")
        return 0
    models = store.list_models()
    if args.json:
        print_json({"models": [{"name": n, **s} for n, s in models.items()]})
        return 0
    if not models:
        print("no saved model specs: any hub id, local path or 'bm25' works with --model; "
              "save one with `embtui models add NAME --model ID`")
        return 0
    print(table(["name", "model", "precision", "batch", "max_len", "device", "query prompt",
                  "doc prompt"], [_model_row(n, s) for n, s in models.items()]))
    return 0


def _model_row(name: str, spec: dict[str, Any]) -> list[Any]:
    """One `embtui models` row; bm25 has no precision, batch, length, device or prompts."""
    def prompt(text: str | None, prompt_name: str | None) -> str:
        return repr(text) if text is not None else (f"<{prompt_name}>" if prompt_name else "")

    if str(spec.get("model", "")).lower() == "bm25":
        return [name, spec["model"], "", "", "", "", "", ""]
    if spec.get("pipeline") is not None:  # listed in full by `embtui pipelines`
        return [name, "pipeline", "", "", "", "", "", ""]
    return [name, spec["model"], spec.get("precision"), spec.get("batch_size"),
            spec.get("max_seq_length") or "", spec.get("device"),
            prompt(spec.get("query_prompt"), spec.get("query_prompt_name")),
            prompt(spec.get("document_prompt"), spec.get("document_prompt_name"))]


def cmd_devices(args: argparse.Namespace) -> int:
    from embtui.api.models import list_devices

    devices = list_devices(use_torch=args.torch)
    if args.json:
        print_json({"devices": [d.to_dict() for d in devices]})
        return 0

    def gib(n: int | None) -> str:
        return "" if n is None else f"{n / 2**30:.1f} GiB"

    print(table(["device", "name", "free", "total"],
                 [[d.id, d.name, gib(d.free_memory), gib(d.total_memory)] for d in devices]))
    return 0


def add_spec_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model options (override the saved spec)")
    g.add_argument("--batch-size", type=int, help="texts per forward pass (default 32)")
    g.add_argument("--precision", choices=["fp32", "fp16", "bf16", "onnx", "onnx-int8"],
                   help="fp16/bf16 on GPU or CPU; onnx and onnx-int8 (dynamic int8 weights) run the "
                        "transformer in ONNX Runtime on the CPU")
    g.add_argument("--max-length", type=int, help="max_seq_length in tokens")
    g.add_argument("--query-prompt", help="text prepended to every query")
    g.add_argument("--doc-prompt", help="text prepended to every document")
    g.add_argument("--query-prompt-name", help="name of a prompt stored with the model")
    g.add_argument("--doc-prompt-name", help="name of a prompt stored with the model")
    g.add_argument("--truncate-dim", type=int,
                   help="keep the first N dimensions (Matryoshka), cut from the cached full vectors")
    g.add_argument("--quantize", choices=["int8", "binary"],
                   help="search int8 or binary codes of the cached float32 vectors")
    g.add_argument("--rescore", type=int, metavar="M",
                   help="with --quantize: rescore the top k*M with the float query (1: off)")
    g.add_argument("--no-normalize", action="store_true", help="do not L2-normalise embeddings")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model's own Python code to run (off unless you opt in)")


def add_commands(sub: Any) -> None:
    """Register `models` and `devices`."""
    p = sub.add_parser("models", help="list, add or remove saved model specs")
    p.add_argument("action", nargs="?", choices=["list", "add", "remove"], default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("--model", help="hub id, local path or 'bm25' (default: the name)")
    p.add_argument("--revision")
    p.add_argument("--device", help="preferred device for this model")
    p.add_argument("--replace", action="store_true", help="overwrite a saved spec of that name")
    p.add_argument("--json", action="store_true")
    add_spec_options(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("devices", help="list CPU, CUDA and MPS devices with memory")
    p.add_argument("--torch", action="store_true",
                   help="ask torch (slow to import) instead of NVML; also lists MPS")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_devices)
