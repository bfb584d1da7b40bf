"""The shape of an embedding space: a 2D projection, anisotropy, effective dimensionality, and
k-means clustering with its quality against a label field (pure: arrays in, numbers out).

PCA is the eigendecomposition of the covariance (a D x D matrix: bounded memory for any number of
points, and the same subspace numpy's SVD of the centred data gives; signs fixed as scikit-learn's
``svd_flip`` does, so a projection is reproducible). Clustering is scikit-learn's ``KMeans``
(``MiniBatchKMeans`` above 20,000 points), its quality scikit-learn's silhouette (cosine, on a
seeded sample), NMI, ARI and V-measure (the measure MTEB's clustering tasks report); purity, which
scikit-learn lacks, comes from its contingency matrix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

SEED = 20240607
MINIBATCH_ABOVE = 20_000
SILHOUETTE_SAMPLE = 5_000


@dataclass(frozen=True)
class Projection:
    """Points in 2D (or more) with what the axes keep of the variance."""

    coords: np.ndarray  # [N, n_components] float32
    method: str
    explained: tuple[float, ...] = ()  # share of the variance per axis (PCA)
    params: dict[str, Any] = field(default_factory=dict)


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def covariance_spectrum(x: np.ndarray, chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, eigenvalues descending, eigenvectors as columns) of the covariance of ``x``'s rows,
    accumulated in chunks in float64."""
    x = np.asarray(x)
    n, d = x.shape
    mean = x.mean(axis=0, dtype=np.float64)
    cov = np.zeros((d, d), dtype=np.float64)
    for s in range(0, n, chunk):
        c = x[s:s + chunk].astype(np.float64) - mean
        cov += c.T @ c
    cov /= max(n - 1, 1)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    return mean, np.clip(vals[order], 0.0, None), vecs[:, order]


def pca(x: np.ndarray, n_components: int = 2) -> Projection:
    """The first principal components of ``x``'s rows (centred, not scaled)."""
    x = np.asarray(x)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError("PCA needs at least two points")
    mean, vals, vecs = covariance_spectrum(x)
    comps = vecs[:, :n_components]
    # svd_flip's convention: the largest-magnitude loading of each component is positive
    signs = np.sign(comps[np.argmax(np.abs(comps), axis=0), np.arange(comps.shape[1])])
    comps = comps * np.where(signs == 0, 1.0, signs)
    coords = ((x.astype(np.float64) - mean) @ comps).astype(np.float32)
    total = float(vals.sum()) or 1.0
    return Projection(coords, "pca", tuple(float(v / total) for v in vals[:n_components]),
                      {"n_components": n_components})


def umap_projection(x: np.ndarray, *, n_neighbors: int = 15, min_dist: float = 0.1,
                    seed: int = SEED) -> Projection:
    """UMAP (umap-learn, an optional extra) with cosine distance; seeded."""
    try:
        import umap  # type: ignore[import-not-found]
    except ImportError:
        from embtui.errors import EmbtuiError

        raise EmbtuiError("UMAP needs the umap-learn package", "pip install umap-learn, or use --method pca") from None
    import warnings

    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine", random_state=seed)
    with warnings.catch_warnings():  # "n_jobs overridden by random_state": seeded is the point
        warnings.simplefilter("ignore", UserWarning)
        coords = np.asarray(reducer.fit_transform(np.asarray(x, dtype=np.float32)), dtype=np.float32)
    return Projection(coords, "umap", (), {"n_neighbors": n_neighbors, "min_dist": min_dist, "seed": seed})


def anisotropy(x: np.ndarray, pairs: int = 10_000, seed: int = SEED) -> float:
    """Mean cosine similarity of random pairs of distinct points (0: directions spread evenly;
    near 1: every vector points the same way, as in many untuned transformer spaces)."""
    n = len(x)
    if n < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, pairs)
    j = rng.integers(0, n - 1, pairs)
    j = np.where(j >= i, j + 1, j)  # distinct
    v = normalize(np.asarray(x))
    return float(np.mean(np.einsum("ij,ij->i", v[i], v[j])))


def effective_dimensionality(eigenvalues: np.ndarray) -> dict[str, float]:
    """Participation ratio (sum l)^2 / sum l^2 and the entropy effective rank exp(H(l / sum l)) of
    a covariance spectrum: how many directions the variance really uses."""
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    total = lam.sum()
    if total <= 0:
        return {"participation_ratio": 0.0, "entropy_rank": 0.0}
    p = lam / total
    nz = p[p > 0]
    return {"participation_ratio": float(total ** 2 / np.sum(lam ** 2)),
            "entropy_rank": float(np.exp(-np.sum(nz * np.log(nz))))}


def kmeans(x: np.ndarray, k: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(labels, centres) of k-means on unit vectors (spherical in effect), seeded."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    v = normalize(np.asarray(x))
    k = max(1, min(int(k), len(v)))
    if len(v) > MINIBATCH_ABOVE:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=4)
    labels = model.fit_predict(v)
    return labels.astype(np.int64), model.cluster_centers_.astype(np.float32)


def purity(labels_true: Sequence[Any], labels_pred: Sequence[Any]) -> float:
    """Share of points whose cluster's majority label is their own."""
    from sklearn.metrics.cluster import contingency_matrix

    m = contingency_matrix(labels_true, labels_pred)
    return float(np.asarray(m.max(axis=0)).sum() / max(np.asarray(m).sum(), 1))


@dataclass(frozen=True)
class ClusteringQuality:
    k: int
    silhouette: float | None
    sizes: list[int]
    purity: float | None = None
    nmi: float | None = None
    ari: float | None = None
    v_measure: float | None = None
    homogeneity: float | None = None
    completeness: float | None = None
    n_labelled: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clustering_quality(x: np.ndarray, labels_pred: np.ndarray, labels_true: Sequence[Any] | None = None,
                       *, sample: int = SILHOUETTE_SAMPLE, seed: int = SEED) -> ClusteringQuality:
    """Silhouette (cosine, on a seeded sample of ``sample`` points) and, with ``labels_true`` (None
    entries are points without a label, left out), purity, NMI, ARI and V-measure."""
    from sklearn import metrics as skm

    labels_pred = np.asarray(labels_pred)
    k = int(len(np.unique(labels_pred)))
    sizes = np.bincount(labels_pred.astype(np.int64)).tolist() if len(labels_pred) else []
    sil = None
    if 2 <= k < len(labels_pred):
        n = len(labels_pred)
        size = min(sample, n)
        sil = float(skm.silhouette_score(np.asarray(x), labels_pred, metric="cosine",
                                         sample_size=size if size < n else None, random_state=seed))
    if labels_true is None:
        return ClusteringQuality(k, sil, sizes)
    keep = np.array([t is not None and t == t and str(t) != "" for t in labels_true], dtype=bool)
    if keep.sum() < 2:
        return ClusteringQuality(k, sil, sizes)
    t = np.asarray([str(v) for v, kk in zip(labels_true, keep) if kk])
    p = labels_pred[keep]
    h, c, v = skm.homogeneity_completeness_v_measure(t, p)
    return ClusteringQuality(k, sil, sizes, purity(t, p), float(skm.normalized_mutual_info_score(t, p)),
                             float(skm.adjusted_rand_score(t, p)), float(v), float(h), float(c),
                             int(keep.sum()))


@dataclass(frozen=True)
class SpaceStats:
    n: int
    dim: int
    anisotropy: float
    participation_ratio: float
    entropy_rank: float
    explained_2d: float
    clustering: ClusteringQuality | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["clustering"] = self.clustering.to_dict() if self.clustering else None
        return d


def space_stats(x: np.ndarray, *, k: int | None = None, labels_true: Sequence[Any] | None = None,
                seed: int = SEED) -> tuple[SpaceStats, np.ndarray | None]:
    """The statistics of one model's space (and the k-means labels when ``k`` is given)."""
    x = np.asarray(x)
    _mean, vals, _vecs = covariance_spectrum(x)
    eff = effective_dimensionality(vals)
    total = float(vals.sum()) or 1.0
    labels = None
    quality = None
    if k:
        labels, _ = kmeans(x, k, seed)
        quality = clustering_quality(x, labels, labels_true, seed=seed)
    return SpaceStats(len(x), int(x.shape[1]), anisotropy(x, seed=seed), eff["participation_ratio"],
                      eff["entropy_rank"], float(vals[:2].sum() / total), quality), labels
