"""Trust under faults: every resource fault is one line (exit 2), bugs go to a crash log (exit 1),
user numbers are bounded, and judged queries with no relevant document count as trec_eval counts them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from embtui.cli import main
from tests.conftest import DEMO, copy_demo

EMBTUI = [sys.executable, "-m", "embtui"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("embtui: note:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def cli(*argv: str, env: dict[str, str] | None = None, timeout: float = 300,
        prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([*(prefix or []), *EMBTUI, *argv], capture_output=True, text=True,
                          timeout=timeout, env=full, cwd=Path(__file__).resolve().parents[1])


@pytest.fixture()
def ws(demo_template: Path, tmp_path: Path) -> Path:
    """The demo imported by `embtui import beir` (a copy of the session's import)."""
    return copy_demo(demo_template, tmp_path / "ws")


def _can_unshare_mount() -> bool:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


needs_mount_ns = pytest.mark.skipif(not _can_unshare_mount(),
                                    reason="needs root and `unshare -m` for a private tmpfs / read-only mount")


# ------------------------------------------------------------------------------ bounds on numbers


def test_huge_k_is_capped_at_the_corpus_size_in_bounded_memory(ws: Path) -> None:
    # --k 100000000 on a 400-document project once grew to 20 GB and met the kernel's OOM killer;
    # under a 3 GB address-space limit it must finish, say so once, and match a plain k's numbers
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))"
    code = (f"{limit}; import sys; from embtui.cli import main; sys.exit(main(sys.argv[1:]))")
    base = ["--workspace", str(ws), "eval", "--project", "demo", "--model", "bm25", "--json"]
    big = subprocess.run([sys.executable, "-c", code, *base, "--k", "1,10,100000000", "--force"],
                         capture_output=True, text=True, timeout=600)
    assert big.returncode == 0, big.stderr[-2000:]
    notes = [ln for ln in big.stderr.splitlines() if "note:" in ln]
    assert notes == ["embtui: note: k 100000000 is more than the 400 documents of project 'demo': each "
                     "query ranks all 400 (metrics @k past that are computed exactly, as trec_eval does)"]
    import json

    (run,) = json.loads(big.stdout)["runs"]
    small = cli(*base, "--k", "1,10,400", "--force")
    (ref,) = json.loads(small.stdout)["runs"]
    assert run["metrics"]["ndcg@10"] == ref["metrics"]["ndcg@10"]
    assert run["metrics"]["recall@100000000"] == ref["metrics"]["recall@400"] == 1.0
    assert run["metrics"]["p@100000000"] == pytest.approx(ref["metrics"]["p@400"] * 400 / 1e8)
    assert run["info"]["depth_searched"] == 400


@pytest.mark.parametrize("ks", [(0,), (-3, 10), ("a",), (1.5,), (True,), ()])
def test_bad_cutoffs_in_the_api_are_one_clear_error(ks: tuple) -> None:
    from embtui.engine.evaluate import EvalRequest
    from embtui.engine.models import ModelSpec
    from embtui.errors import EmbtuiError

    with pytest.raises(EmbtuiError, match="cutoff|no cutoffs"):
        EvalRequest("demo", ModelSpec("bm25"), ks=ks)
    with pytest.raises(EmbtuiError, match="depth"):
        EvalRequest("demo", ModelSpec("bm25"), depth=0)


@pytest.mark.parametrize("name,value", [("EMBTUI_LOCK_TIMEOUT", "abc"), ("EMBTUI_CHUNK_TEXTS", "0"),
                                        ("EMBTUI_JOBS_PER_DEVICE", "two"),
                                        ("EMBTUI_JOBS_HEARTBEAT_TIMEOUT", "-1")])
def test_bad_environment_value_is_one_line(ws: Path, name: str, value: str) -> None:
    res = cli("--workspace", str(ws), "runs", env={name: value}, timeout=120)
    assert res.returncode == 2, res.stderr
    line = one_line(res.stderr)
    assert line.startswith(f"embtui: error: {name}={value!r} is not valid: it must be "), line
    assert f"e.g. {name}=" in line


# ------------------------------------------------------------------------------ the database file


def _damaged(kind: str, ws: Path) -> Path:
    db = ws / "embtui.duckdb"
    if kind == "empty":
        db.write_bytes(b"")
    elif kind == "random":
        db.write_bytes(os.urandom(50_000))
    elif kind == "truncated":
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])
    elif kind == "garbled":
        data = bytearray(db.read_bytes())
        for i in range(8192, len(data), 5):
            data[i] ^= 0xFF
        db.write_bytes(bytes(data))
    return db


@pytest.mark.parametrize("kind", ["empty", "random", "truncated", "garbled"])
@pytest.mark.parametrize("command", [["runs"], ["projects"], ["doctor"]])
def test_damaged_database_is_one_line_naming_the_file(ws: Path, kind: str, command: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    db = _damaged(kind, ws)
    code, out, err = run_cli(capsys, "--workspace", str(ws), *command)
    if command == ["doctor"]:  # the doctor reports it as its finding, and does not offer --fix
        assert code == 1 and "Traceback" not in out + err
        assert "workspace has problems\n" in out and "can be repaired" not in out
        line = next(ln for ln in out.splitlines() if ln.startswith("BAD  database"))
    else:
        assert code == 2, err
        line = one_line(err)
    assert f"{db} is not an embtui database or is damaged" in line
    assert "restore it from a backup" in line and "doctor --fix` does not touch it" in line


def test_foreign_duckdb_file_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import duckdb

    root = tmp_path / "other"
    root.mkdir()
    con = duckdb.connect(str(root / "embtui.duckdb"))
    con.execute("CREATE TABLE sales (id INTEGER)")
    con.close()
    code, _, err = run_cli(capsys, "--workspace", str(root), "projects")
    assert code == 2
    assert "is a DuckDB database but not an embtui workspace (it has tables sales)" in one_line(err)
    con = duckdb.connect(str(root / "embtui.duckdb"), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    con.close()
    assert tables == {"sales"}  # no embtui table was added to someone else's database


def test_workspace_naming_a_file_or_a_db_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    for command in (["runs"], ["import", "beir", str(DEMO), "--project", "d"]):
        code, _, err = run_cli(capsys, "--workspace", str(f), *command)
        assert code == 2
        assert one_line(err) == (f"embtui: error: the workspace {f} is a file, not a folder (pass "
                                 "--workspace a folder; embtui creates it if it is missing)")
    (tmp_path / "w" / "embtui.duckdb").mkdir(parents=True)
    code, _, err = run_cli(capsys, "--workspace", str(tmp_path / "w"), "projects")
    assert code == 2 and "embtui.duckdb is not an embtui database (it is a folder)" in one_line(err)


def _in_namespace(script: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PY": sys.executable}
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=Path(__file__).resolve().parents[1])


@needs_mount_ns
def test_read_only_workspace_reads_work_and_writes_say_so(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--workspace", str(ws), "eval", "--project", "demo", "--model", "bm25")
    assert code == 0, err
    emb = "$PY -m embtui --workspace " + str(ws)
    script = (f"mount --bind {ws} {ws} && mount -o remount,ro,bind {ws} {ws} && "
              f"{emb} runs; echo rc=$?; {emb} projects --json; echo rc=$?; "
              f"{emb} eval --project demo --model bm25 --force 2>&1; echo rc=$?; "
              f"{emb} import beir {DEMO} --project d2 2>&1; echo rc=$?")
    res = _in_namespace(script)
    out = res.stdout
    assert "Traceback" not in out + res.stderr, out + res.stderr
    assert out.count("rc=0") == 2 and out.count("rc=2") == 2, out + res.stderr
    assert "bm25" in out and '"documents": 400' in out
    ro = [ln for ln in out.splitlines() if "read-only" in ln]
    assert len(ro) == 2, out
    assert ro[0].startswith(f"embtui: error: the workspace {ws} is read-only: this command writes to it")


@needs_mount_ns
@pytest.mark.parametrize("free_kb,what", [(0, "writing the workspace database"),
                                          (120, "encoding documents (writing the embedding cache in")])
def test_disk_full_is_one_line_and_leaves_nothing_half_written(ws: Path, tiny_model: Path, free_kb: int,
                                                               what: str) -> None:
    # a real full disk: a private tmpfs filled up to the last few kilobytes
    script = ("mount -t tmpfs -o size=8m tmpfs /mnt && cp -r " + str(ws) + " /mnt/ws && "
              "avail=$(df --output=avail -k /mnt | tail -1) && "
              f"(dd if=/dev/zero of=/mnt/fill bs=1k count=$((avail - {free_kb})) 2>/dev/null; true) && "
              f"$PY -m embtui --workspace /mnt/ws eval --project demo --model {tiny_model} --device cpu; "
              "echo rc=$?; echo FILES; find /mnt/ws -type f | sort; "
              "rm /mnt/fill; $PY -m embtui --workspace /mnt/ws runs --json > /dev/null; echo after=$?")
    res = _in_namespace(script)
    err, out = res.stderr, res.stdout
    assert "rc=2" in out, out + err
    line = one_line(err)
    assert line.startswith(f"embtui: error: disk full while {what}"), line
    assert "nothing half-written was kept (free some space, then run it again)" in line
    files = out.split("FILES", 1)[1]
    assert ".tmp" not in files, files  # no temp file of the cache or of the database left behind
    assert "after=0" in out  # the workspace still opens once space is back


# ------------------------------------------------------------------------------ run files, models


@pytest.mark.parametrize("target", ["dir", "missing-folder"])
def test_bad_run_file_is_refused_before_any_run_is_stored(ws: Path, tmp_path: Path, target: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path if target == "dir" else tmp_path / "nowhere" / "run.trec"
    code, _, err = run_cli(capsys, "--workspace", str(ws), "eval", "--project", "demo", "--model", "bm25",
                           "--run-file", str(path))
    assert code == 2
    line = one_line(err)
    if target == "dir":
        assert line.startswith(f"embtui: error: --run-file {path} is a folder (give a file name")
    else:
        assert f"the folder {path.parent} does not exist (create it first (mkdir -p" in line
    from embtui.store import Store

    assert Store.open(ws).list_runs() == []  # nothing was evaluated, nothing stored


def test_pickled_weights_are_refused_in_one_line(ws: Path, tiny_model: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import torch
    from safetensors.torch import load_file

    model = tmp_path / "pickled"
    shutil.copytree(tiny_model, model)
    marker = tmp_path / "pickle-ran"
    (st,) = list(model.rglob("*.safetensors"))
    state = load_file(str(st))

    class Payload:  # what a malicious checkpoint carries: code that runs when unpickled
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({**state, "extra": Payload()}, st.with_name("pytorch_model.bin"))
    st.unlink()
    code, _, err = run_cli(capsys, "--workspace", str(ws), "eval", "--project", "demo", "--model",
                           str(model), "--device", "cpu")
    assert code == 2, err
    line = one_line(err)
    assert "are a pickle that holds more than tensors; embtui loads only safetensors or weights_only" in line
    assert "save_file(torch.load('pytorch_model.bin', weights_only=False)" in line
    assert not marker.exists()


# ------------------------------------------------------------------------------ bugs


def test_a_bug_is_one_line_pointing_at_a_crash_log(ws: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import embtui.cli.evaluate as cli_mod

    def broken(args):  # stands in for any bug: an exception embtui did not expect
        return {}["no such key"]

    monkeypatch.setattr(cli_mod, "cmd_runs", broken)
    code, _, err = run_cli(capsys, "--workspace", str(ws), "runs")
    assert code == 1
    line = one_line(err)
    assert line.startswith("embtui: internal error: KeyError: 'no such key' (the traceback is in ")
    log = Path(line.split("the traceback is in ", 1)[1].split(";", 1)[0])
    assert log.parent == ws / "logs" and log.name.startswith("crash-")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "no such key" in text


def test_oserror_from_a_full_disk_anywhere_is_one_line(ws: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    import embtui.cli.evaluate as cli_mod

    def full(args):  # the boundary: the OS says the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", str(ws / "out.bin"))

    monkeypatch.setattr(cli_mod, "cmd_runs", full)
    code, _, err = run_cli(capsys, "--workspace", str(ws), "runs")
    assert code == 2
    line = one_line(err)
    assert line.startswith(f"embtui: error: disk full while writing {ws / 'out.bin'}, ")
    assert " free; nothing half-written was kept" in line


# ------------------------------------------------------------------------------ trec_eval's convention


def test_unanswerable_queries_count_as_zero_like_trec_eval(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import json

    import pytrec_eval

    from embtui.engine.compare import corrected_result, run_values
    from embtui.store import Store

    # the demo with five test queries whose judgments are all 0 (judged, none relevant)
    data = tmp_path / "beir"
    shutil.copytree(DEMO, data)
    lines = (data / "qrels" / "test.tsv").read_text().splitlines()
    qids = list(dict.fromkeys(ln.split("\t")[0] for ln in lines[1:]))[:5]
    rows = [lines[0]] + [ln if ln.split("\t")[0] not in qids else ln.rsplit("\t", 1)[0] + "\t0"
                         for ln in lines[1:]]
    (data / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    ws = str(tmp_path / "ws")
    assert run_cli(capsys, "--workspace", ws, "import", "beir", str(data), "--project", "p")[0] == 0
    run_file = tmp_path / "run.trec"
    code, out, err = run_cli(capsys, "--workspace", ws, "eval", "--project", "p", "--model", "bm25",
                             "--json", "--run-file", str(run_file))
    assert code == 0, err
    (run,) = json.loads(out)["runs"]
    assert run["info"]["scored"] == 100 and run["info"]["unanswerable"] == 5
    assert run["info"]["summary"] == ("100 queries scored (5 with no relevant judgment, scored 0 as "
                                      "trec_eval does)")
    qrels: dict[str, dict[str, int]] = {}
    for ln in rows[1:]:
        q, d, g = ln.split("\t")
        qrels.setdefault(q, {})[d] = int(g)
    trec: dict[str, dict[str, float]] = {}
    for ln in run_file.read_text().splitlines():
        q, _, d, _, s, _ = ln.split()
        trec.setdefault(q, {})[d] = float(s)
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(trec)
    assert len(ref) == 100
    assert abs(run["metrics"]["ndcg@10"] - sum(v["ndcg_cut_10"] for v in ref.values()) / 100) < 1e-9
    assert abs(run["metrics"]["recall@100"] - sum(v["recall_100"] for v in ref.values()) / 100) < 1e-9

    code, out, err = run_cli(capsys, "--workspace", ws, "eval", "--project", "p", "--model", "bm25",
                             "--json", "--skip-unanswerable")
    assert code == 0, err
    (old,) = json.loads(out)["runs"]
    assert old["id"] != run["id"]  # another convention: not "identical", a run of its own
    assert old["info"]["scored"] == 95 and old["info"]["skip_unanswerable"] is True
    assert old["metrics"]["ndcg@10"] == pytest.approx(run["metrics"]["ndcg@10"] * 100 / 95)
    assert "5 skipped (5 with no relevant judgment)" in old["info"]["summary"]
    # the per-query vectors behind compare/report hold the zeros; re-scoring keeps each run's convention
    store = Store.open(ws)
    new_run, old_run = store.get_run(run["id"]), store.get_run(old["id"])
    values = run_values(store, new_run, "ndcg@10")
    assert len(values) == 100 and all(values[q] == 0.0 for q in qids)
    assert len(run_values(store, old_run, "ndcg@10")) == 95
    for r in (new_run, old_run):
        assert corrected_result(store, r.id).aggregate["ndcg@10"] == pytest.approx(r.metrics["ndcg@10"])


def test_skip_unanswerable_travels_in_the_job_payload() -> None:
    from embtui.engine.evaluate import EvalRequest
    from embtui.engine.models import ModelSpec

    req = EvalRequest("p", ModelSpec("bm25"), skip_unanswerable=True, ks=(1, 10))
    again = EvalRequest.from_dict(json_roundtrip(req.to_dict()))
    assert again.skip_unanswerable is True and again == req
    assert EvalRequest.from_dict({**req.to_dict(), "skip_unanswerable": False}).skip_unanswerable is False


def json_roundtrip(obj):
    import json

    return json.loads(json.dumps(obj))


def test_a_run_cut_short_keeps_its_stage_times(tiny_model: Path, demo_store) -> None:
    """A cancelled run still says where its time went: the stages that finished, the one that was
    running, and for how long."""
    from embtui.engine.evaluate import EvalRequest, run_evaluation
    from embtui.engine.models import ModelSpec
    from embtui.engine.progress import CancelToken
    from embtui.errors import Cancelled

    cancel = CancelToken()

    def progress(p) -> None:
        if p.stage == "encode documents" and p.done > 0:
            cancel.cancel()

    spec = ModelSpec(model=str(tiny_model), name="tiny", batch_size=8)
    with pytest.raises(Cancelled):
        run_evaluation(demo_store, EvalRequest("demo", spec, chunk_texts=16), progress=progress,
                       cancel=cancel)
    run = demo_store.list_runs()[-1]
    assert run.status == "cancelled"
    assert run.timings["cut_at"] == "encode documents"
    assert run.timings["load_data_s"] >= 0 and run.timings["cut_stage_s"] > 0
    assert run.timings["total_s"] >= run.timings["cut_stage_s"]
