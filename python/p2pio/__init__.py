# SPDX-License-Identifier: MIT
"""p2pio: load LLM weights (GGUF) from NVMe into GPU memory, peer to peer, from Python.

    import p2pio, torch
    with p2pio.Context() as ctx:                    # GPU 0 if there is one, else host
        model = ctx.open_model("model.gguf")
        model.load()
        w = torch.from_dlpack(model["blk.0.attn_q.weight"])   # no copy

A thin layer over libp2pio.so.0 through ctypes (python/README.md says why): _lib (the
library, its structs, errors), _dlpack (the capsules), _resource (lifetimes), _tensor,
_context (contexts, buffers, files), _model (models, streamers, layers), _experts (expert
caches), _trace (routing traces: recorded, loaded, replayed through the caches' policies).
"""

from ._context import Buffer, Context, File
from ._experts import Expert, Experts
from ._lib import (CTX_BOUNCE_ASYNC, CTX_NO_WARM_CHECK, CTX_POLL, CTX_URGENT_ALONE,
		   P2pioError)
from ._model import Layer, Model, Streamer
from ._tensor import DTYPES, GGML_DTYPES, Tensor, ggml_type_name, version
from ._trace import Trace, TraceWriter, synth

__version__ = version()

__all__ = ["Context", "Buffer", "File", "Model", "Streamer", "Layer", "Experts", "Expert",
	   "Tensor", "P2pioError", "Trace", "TraceWriter", "synth",
	   "version", "ggml_type_name", "DTYPES", "GGML_DTYPES", "CTX_NO_WARM_CHECK",
	   "CTX_BOUNCE_ASYNC", "CTX_POLL", "CTX_URGENT_ALONE"]
