"""Live queries: a searcher over any evaluated model (dense or BM25) that answers one typed query
at a time, how many documents it may encode on demand, and the cancel token a front end holds."""

from embtui.engine.live import LiveSearcher, NotEvaluated, on_demand_max_docs
from embtui.engine.progress import CancelToken

__all__ = ["CancelToken", "LiveSearcher", "NotEvaluated", "on_demand_max_docs"]
