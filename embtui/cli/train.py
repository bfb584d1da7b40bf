"""`embtui finetune`, `embtui distill`, `embtui gate` and `embtui ab`: improve a model, check an update
before shipping it, and read the A/B test that follows."""

from __future__ import annotations

import argparse
from typing import Any

from embtui.cli.output import open_store, print_json, table

EXIT_GATE_FAILED = 1


def _fmt(v: Any, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def cmd_finetune(args: argparse.Namespace) -> int:
    from embtui.api.training import FinetuneRequest, TrainConfig, finetune, parse_dims

    store = open_store(args)
    cfg = TrainConfig(loss=args.loss, matryoshka=parse_dims(args.matryoshka), epochs=args.epochs,
                      batch_size=args.batch_size, mini_batch_size=args.mini_batch_size, lr=args.lr,
                      warmup_ratio=args.warmup_ratio, weight_decay=args.weight_decay,
                      max_seq_length=args.max_seq_length, seed=args.seed, precision=args.precision,
                      eval_steps=args.eval_steps, metric=args.metric, patience=args.patience,
                      dev_corpus=None if args.dev_corpus == 0 else args.dev_corpus,
                      report_to=tuple(x for x in (args.report_to or "").split(",") if x))
    req = FinetuneRequest(project=args.project, base=args.model, name=args.name,
                          train_split=args.train_split, dev_split=args.dev_split,
                          dev_fraction=args.dev_fraction, test_split=args.test_split,
                          hard_negatives=args.hard_negatives, negatives_from=args.negatives_from,
                          max_pairs=args.max_pairs, drop_leaked=args.drop_leaked, config=cfg,
                          device=args.device, evaluate_test=not args.no_test)
    res = finetune(store.ws, req, detach=args.detach)
    if args.json or args.detach:
        print_json(res)
        return 0
    vs = res.get("vs_base") or {}
    print(f"model '{res['model']}' saved to {res.get('path')} (best dev step {res.get('best_step')}, "
          f"job {res['job_id']})")
    dev, base_dev = res.get("dev") or {}, res.get("base_dev") or {}
    print(f"dev {args.metric}: {_fmt(dev.get(args.metric))} (base {_fmt(base_dev.get(args.metric))})")
    for w in res.get("warnings") or []:
        print(f"warning: {w}")
    if res.get("run"):
        print(table(["run", "model", "ndcg@10", "recall@100"],
                    [[res["base_run"]["id"], args.model, _fmt(res["base_run"].get("ndcg@10")),
                      _fmt(res["base_run"].get("recall@100"))],
                     [res["run"]["id"], res["model"], _fmt(res["run"].get("ndcg@10")),
                      _fmt(res["run"].get("recall@100"))]]))
        print(f"{vs.get('metric')}: {vs.get('delta', 0):+.4f} against the base, randomization test "
              f"p = {_fmt(vs.get('p_permutation'), 4)} ({vs.get('verdict')})")
    return 0


def cmd_finetune_reranker(args: argparse.Namespace) -> int:
    from embtui.api.training import RerankerRequest, TrainConfig, finetune

    store = open_store(args)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      max_seq_length=args.max_seq_length, seed=args.seed, eval_steps=args.eval_steps,
                      precision=args.precision, warmup_ratio=args.warmup_ratio)
    req = RerankerRequest(project=args.project, base=args.model, name=args.name,
                          first_stage=args.first_stage, rerank_depth=args.rerank_depth,
                          train_split=args.train_split, dev_split=args.dev_split,
                          dev_fraction=args.dev_fraction, test_split=args.test_split,
                          hard_negatives=args.hard_negatives, max_pairs=args.max_pairs,
                          drop_leaked=args.drop_leaked, config=cfg, device=args.device,
                          evaluate_test=not args.no_test)
    res = finetune(store.ws, req, detach=args.detach)
    if args.json or args.detach:
        print_json(res)
        return 0
    print(f"reranker '{res['model']}' saved to {res['path']} (best dev step {res.get('best_step')}); "
          f"pipeline '{res['pipeline']}': {args.first_stage} -> {res['model']} (top {args.rerank_depth})")
    for w in res.get("warnings") or []:
        print(f"warning: {w}")
    if res.get("run"):
        vs = res["vs_base"]
        print(f"test ndcg@10 {_fmt(res['run'].get('ndcg@10'))} against {args.first_stage} alone "
              f"{_fmt(res['base_run'].get('ndcg@10'))} ({vs['delta']:+.4f}, p = {_fmt(vs['p_permutation'])})")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from embtui.api.training import distill

    store = open_store(args)
    extra = ({} if args.student is None else
             {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
              "max_seq_length": args.max_seq_length, "seed": args.seed})
    res = distill(store, args.model, args.name, student=args.student, project=args.project,
                  pca_dims=args.pca_dims, test_split=args.test_split, device=args.device, **extra)
    if args.json:
        print_json(res)
        return 0
    what = "static model" if args.student is None else "student"
    took = res.get("distill_seconds", res.get("train_seconds"))
    print(f"{what} '{res['model']}' ({res['dim']} dims, {res['size_mib']} MiB; teacher "
          f"{res['teacher_size_mib']} MiB) in {took} s, saved to {res['path']}")
    if res.get("run"):
        vs = res["vs_base"]
        print(f"test ndcg@10 {_fmt(res['run'].get('ndcg@10'))} against the teacher's "
              f"{_fmt(res['base_run'].get('ndcg@10'))} ({vs['delta']:+.4f}, p = {_fmt(vs['p_permutation'])})")
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    from embtui.api.training import gate

    store = open_store(args, create=False)
    res = gate(store, args.project, args.baseline, args.candidate, split=args.split, metric=args.metric,
               margin=args.margin, alpha=args.alpha)
    if args.json:
        print_json(res)
    else:
        print(table(["", "run", "model", f"mean {res['metric']}"],
                    [["baseline", res["baseline"]["run"], res["baseline"]["model"], _fmt(res["mean_baseline"])],
                     ["candidate", res["candidate"]["run"], res["candidate"]["model"],
                      _fmt(res["mean_candidate"])]]))
        print(f"delta {res['delta']:+.4f} over {res['n']} queries ({res['wins']} better, {res['losses']} "
              f"worse); margin {res['margin']:g}; one-sided randomization p = {res['p_permutation']:.4g}"
              + (f", t-test p = {res['p_ttest']:.4g}" if res.get("p_ttest") is not None else ""))
        print(res["verdict"])
    return 0 if res["passed"] else EXIT_GATE_FAILED


def cmd_ab(args: argparse.Namespace) -> int:
    from embtui.api.training import ab_test

    res = ab_test(args.log, control=args.control, alpha=args.alpha, effect=args.effect, power=args.power)
    if args.json:
        print_json(res)
        return 0
    rows = [[v["variant"], v["impressions"], v["clicks"], f"{v['ctr']:.4f}", f"{v['abandonment']:.4f}",
             f"{v['mrr']:.4f}", "" if v["ctr_delta"] is None else f"{v['ctr_delta']:+.4f}",
             "" if v["p_ctr"] is None else f"{v['p_ctr']:.4g}",
             "" if v["mrr_delta"] is None else f"{v['mrr_delta']:+.4f}",
             "" if v["p_mrr"] is None else f"{v['p_mrr']:.4g}"] for v in res["variants"]]
    print(table(["variant", "impressions", "clicks", "CTR", "abandonment", "MRR", "ΔCTR", "p (z-test)",
                 "ΔMRR", "p (Welch)"], rows))
    ss = res["sample_size"]
    print(f"control: {res['control']}; to detect a CTR change of {ss['effect']:+g} at alpha "
          f"{ss['alpha']:g} with power {ss['power']:g}: {ss['per_variant'] or 'n/a'} impressions per variant")
    return 0


def add_commands(sub: Any) -> None:
    """Register `finetune`, `distill`, `gate`, `ab`."""
    from embtui.api.training import DEV_METRICS, LOSSES, PRECISIONS

    p = sub.add_parser("finetune", help="fine-tune a model on a project's training pairs (a job)",
                       description="Fine-tune a sentence-transformers model on a project's training "
                       "split with a dev split, leakage check, best-checkpoint selection and lineage; "
                       "the result is evaluated on the test split against the base.")
    p.add_argument("--project", required=True)
    p.add_argument("--model", required=True, help="the base model (saved spec, hub id or folder)")
    p.add_argument("--name", required=True, help="name of the new model (saved under models/NAME)")
    p.add_argument("--train-split", default="train")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--dev-split", help="the project's dev split (default: 'dev' if it has one)")
    g.add_argument("--dev-fraction", type=float, default=0.1,
                   help="else hold out this share of training queries, seeded (default 0.1)")
    p.add_argument("--test-split", default="test")
    p.add_argument("--loss", choices=LOSSES, default="mnrl",
                   help="mnrl: MultipleNegativesRankingLoss; cmnrl: its cached form (big batch, "
                   "little memory); gist: GISTEmbedLoss guided by the base model")
    p.add_argument("--hard-negatives", type=int, default=0, metavar="N",
                   help="N hard negatives per pair: mined with the base model (its cached "
                   "embeddings), or from --negatives-from RUN (default there: 3)")
    p.add_argument("--negatives-from", type=int, metavar="RUN",
                   help="take negatives from a run's rankings of the training queries")
    p.add_argument("--matryoshka", metavar="DIMS", help="wrap the loss in MatryoshkaLoss, e.g. 384,256,128,64")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--mini-batch-size", type=int, default=32, help="cmnrl: texts per forward pass")
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-seq-length", type=int, default=256)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="bf16/fp16 need CUDA")
    p.add_argument("--eval-steps", type=int, help="dev evaluation every N steps (default ~4 per epoch)")
    p.add_argument("--metric", choices=DEV_METRICS, default="ndcg@10", help="dev metric for the best checkpoint")
    p.add_argument("--patience", type=int, help="stop after N dev evaluations without improvement")
    p.add_argument("--dev-corpus", type=int, default=2000,
                   help="documents the dev queries search: judged + seeded sample (0: all)")
    p.add_argument("--max-pairs", type=int, help="train on the first N pairs only")
    p.add_argument("--drop-leaked", action="store_true",
                   help="leave training queries equal to test/dev queries out instead of refusing")
    p.add_argument("--report-to", metavar="LIST", help="tensorboard,wandb,mlflow (if installed)")
    p.add_argument("--device")
    p.add_argument("--no-test", action="store_true", help="skip the test-split evaluation")
    p.add_argument("--detach", action="store_true", help="run as a background job; print its id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_finetune)

    r = sub.add_parser("finetune-reranker", help="fine-tune a cross-encoder to rerank a first stage (a job)",
                       description="Train a CrossEncoder with binary cross-entropy on the project's "
                       "pairs, negatives from the first stage's ranking of the training queries; the "
                       "dev split reranks that first stage's top-N. Saves the pipeline NAME-pipeline.")
    r.add_argument("--project", required=True)
    r.add_argument("--model", required=True, help="a cross-encoder, or a transformer to start one from")
    r.add_argument("--name", required=True)
    r.add_argument("--first-stage", default="bm25", help="the retriever it reranks (default bm25)")
    r.add_argument("--rerank-depth", type=int, default=30)
    r.add_argument("--train-split", default="train")
    g2 = r.add_mutually_exclusive_group()
    g2.add_argument("--dev-split")
    g2.add_argument("--dev-fraction", type=float, default=0.1)
    r.add_argument("--test-split", default="test")
    r.add_argument("--hard-negatives", type=int, default=3)
    r.add_argument("--epochs", type=float, default=1.0)
    r.add_argument("--batch-size", type=int, default=16)
    r.add_argument("--lr", type=float, default=2e-5)
    r.add_argument("--warmup-ratio", type=float, default=0.1)
    r.add_argument("--max-seq-length", type=int, default=256)
    r.add_argument("--seed", type=int, default=42)
    r.add_argument("--precision", choices=PRECISIONS, default="fp32")
    r.add_argument("--eval-steps", type=int)
    r.add_argument("--max-pairs", type=int)
    r.add_argument("--drop-leaked", action="store_true")
    r.add_argument("--device")
    r.add_argument("--no-test", action="store_true")
    r.add_argument("--detach", action="store_true")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_finetune_reranker)

    d = sub.add_parser("distill", help="distill a static model2vec model, or train a student, from a model",
                       description="Without --student: a static model2vec model (model2vec.distill, "
                       "seconds to minutes on a CPU). With --student MODEL: that smaller model trained "
                       "to reproduce the teacher's embeddings (MSELoss) on the project's texts.")
    d.add_argument("--model", required=True, help="the teacher")
    d.add_argument("--name", required=True)
    d.add_argument("--project", help="evaluate the result on this project's test split (a student "
                   "also trains on its documents and training queries)")
    d.add_argument("--test-split", default="test")
    d.add_argument("--pca-dims", type=int, default=256, help="static model: dimensions after PCA")
    d.add_argument("--student", metavar="MODEL", help="train this model to match the teacher instead")
    d.add_argument("--epochs", type=float, default=1.0)
    d.add_argument("--batch-size", type=int, default=32)
    d.add_argument("--lr", type=float, default=1e-4)
    d.add_argument("--max-seq-length", type=int, default=256)
    d.add_argument("--seed", type=int, default=42)
    d.add_argument("--device")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_distill)

    t = sub.add_parser("gate", help="exit 1 if a candidate is significantly worse than a baseline",
                       description="A one-sided paired randomization test: exit 0 when the candidate "
                       "is not significantly worse than the baseline by more than the margin, 1 when "
                       "it is. Models are evaluated (or their identical runs reused) on the split.")
    t.add_argument("--project", required=True)
    t.add_argument("--baseline", required=True, metavar="MODEL|RUN")
    t.add_argument("--candidate", required=True, metavar="MODEL|PIPELINE|RUN")
    t.add_argument("--split", default="test")
    t.add_argument("--metric", default="ndcg@10")
    t.add_argument("--margin", type=float, default=0.0)
    t.add_argument("--alpha", type=float, default=0.05)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_gate)

    a = sub.add_parser("ab", help="A/B test report from an interaction log (JSONL/CSV/Parquet)")
    a.add_argument("log")
    a.add_argument("--control", help="the control variant (default: the first by name)")
    a.add_argument("--alpha", type=float, default=0.05)
    a.add_argument("--effect", type=float, default=0.01, help="CTR change to size the test for")
    a.add_argument("--power", type=float, default=0.8)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_ab)
