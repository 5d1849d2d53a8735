"""MusicGen's token loop, lean: what transformers' ``generate`` samples, without its per-token overhead.

One decoding step of musicgen-small reads its decoder's weights once: about 1.3 GB in fp32,
0.34 GB in int8. On a 2-core CPU that read is the cost of a step, so everything else a step
does is overhead to remove. Compared with ``MusicgenForConditionalGeneration.generate``:

- The prompt is worked on once: the text encoder runs once, and every layer's
  cross-attention keys and values are computed once, before the first step.
- Self-attention keys and values go into a cache allocated once for the whole clip
  (no growth by concatenation, no mask building, no per-step cache objects).
- Classifier-free guidance runs the conditional and unconditional rows as one batch of 2,
  so each weight is read once per token. The unconditional row's cross-attention is
  skipped: its text is null, so its keys and values are exactly zero (the projections have
  no bias) and so is its cross-attention output.
- q/k/v and the per-codebook LM heads are fused into single matrix products; in fp32 on an
  MKL build, weights are prepacked for MKL's small-batch GEMM (``torch.ops.mkl._mkl_linear``,
  the kernel inductor uses for frozen linear layers), which streams them ~1.4× faster than
  the unpacked ``F.linear`` at batch 1–2.
- Sampling is transformers' own, step for step: logits of the last position in fp32, CFG as
  ``uncond + (cond − uncond) · scale``, then temperature (when ≠ 1), top-k (values below the
  k-th largest set to −inf), softmax and ``torch.multinomial``. The same seed therefore
  draws the same random numbers, and the codebook delay pattern comes from transformers'
  ``build_delay_pattern_mask``.

Only the weights' arithmetic order differs from transformers (fused products, packed
GEMM, one attention call), so logits agree to float rounding
(``tests/test_generation.py::test_lean_loop_logits_match_transformers``).

Public surface: :func:`supports`, :func:`quantize_int8` (the ``fast`` mode's int8
decoder), :func:`prepare` and :class:`LeanDecoder` (``sample``, ``logits_for``).
"""

from __future__ import annotations

import os
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["INT8_SCHEMES", "Int8RowsLinear", "LeanDecoder", "int8_rows", "int8_weights", "prepare",
           "quantize_int8", "supports", "unsupported_generation_options"]

#: called after every step with the token matrix so far, ``(codebooks, steps + 1)``
StepCallback = Callable[[torch.Tensor], None]


def supports(model) -> bool:
    """True when ``model`` is a MusicGen whose decoder this loop reproduces exactly.

    That is transformers' ``MusicgenForConditionalGeneration`` in eval mode with its standard
    decoder: GELU feed-forward, unscaled embeddings, and no bias in any decoder projection or
    LM head (the null-text row's cross-attention is then exactly zero), and a generation
    config that asks for nothing the loop does not do (:func:`unsupported_generation_options`).
    Checked on the fp32 model, before any quantization.
    """
    try:
        decoder = model.decoder
        config = decoder.config
        layers = decoder.model.decoder.layers
        linears = [m for m in layers.modules() if isinstance(m, torch.nn.Linear)] + list(decoder.lm_heads)
    except AttributeError:
        return False
    return (
        type(model).__name__ == "MusicgenForConditionalGeneration"
        and not model.training
        and config.activation_function == "gelu"
        and not getattr(config, "scale_embedding", False)
        and config.cross_attention_hidden_size is None
        and all(type(m) is torch.nn.Linear and m.bias is None for m in linears)
        and not unsupported_generation_options(getattr(model, "generation_config", None))
    )


#: generation-config fields the loop honours (sampling, CFG scale, top-k, temperature are passed
#: by the caller) or that do not change the tokens drawn.
HANDLED_GENERATION_OPTIONS = frozenset({
    "do_sample", "top_k", "temperature", "guidance_scale", "max_length", "max_new_tokens", "pad_token_id",
    "bos_token_id", "decoder_start_token_id", "use_cache", "transformers_version", "_from_model_config",
    "return_dict_in_generate", "output_scores", "output_logits", "output_attentions", "output_hidden_states",
    "cache_implementation",
})


def unsupported_generation_options(generation_config) -> list[str]:
    """The fields of ``generation_config`` that would make ``generate`` sample differently from this loop.

    Any field set away from transformers' default that the loop does not reproduce: top-p,
    min-p, typical-p, repetition or n-gram penalties, an end-of-sequence token (the loop never
    stops early), suppressed or forced tokens, beams, and so on. Empty when the loop draws
    what ``generate`` draws; a model with such a field falls back to ``generate``.
    """
    if generation_config is None:
        return []
    return sorted(k for k in generation_config.to_diff_dict() if k not in HANDLED_GENERATION_OPTIONS)


def _mkl_packing_available() -> bool:
    return (
        torch.backends.mkl.is_available()
        and hasattr(torch.ops.mkl, "_mkl_reorder_linear_weight")
        and hasattr(torch.ops.mkl, "_mkl_linear")
    )


class _Linear:
    """``y = x · Wᵀ`` (no bias) for ``x`` of shape ``(rows, in)``: fp32, MKL-prepacked for one row count.

    MKL's packed GEMM serves exactly the row count it was packed for; fewer rows are padded
    with zeros up to it (a step without CFG reuses the pair's packing instead of packing the
    weights a second time, 1.4 GB for musicgen-small), more rows use ``F.linear``.
    :meth:`prepare` packs for ``max(rows, 2)`` rows, replacing a packing for another count
    (a batch of clips packs for its ``2 × clips`` rows: twice as fast as ``F.linear`` at 16
    rows here, and one packing at a time keeps the memory at one copy).
    """

    __slots__ = ("weight", "packed", "rows", "pack")

    def __init__(self, weight: torch.Tensor, *, pack: bool):
        self.weight = weight.detach()
        self.packed: torch.Tensor | None = None
        self.rows = 0
        self.pack = pack and self.weight.device.type == "cpu" and self.weight.dtype == torch.float32

    def prepare(self, rows: int) -> None:
        rows = max(int(rows), 2)
        if self.pack and rows != self.rows:
            self.packed = None  # free the old packing before making the new one
            self.packed = torch.ops.mkl._mkl_reorder_linear_weight(self.weight, rows)
            self.rows = rows

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.shape[0]
        if self.packed is None or rows > self.rows:
            return F.linear(x, self.weight)
        if rows < self.rows:
            padded = torch.cat([x, x.new_zeros((self.rows - rows, x.shape[1]))])
            return torch.ops.mkl._mkl_linear(padded, self.packed, self.weight, None, self.rows)[:rows]
        return torch.ops.mkl._mkl_linear(x, self.packed, self.weight, None, rows)


class _Module:
    """A module used as a linear map (an int8 dynamic-quantized Linear); nothing to prepare."""

    __slots__ = ("module",)

    def __init__(self, module):
        self.module = module

    def prepare(self, rows: int) -> None:
        pass

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


class _Concat:
    """``cat([m(x) for m in maps], -1)``: the unfused form of a fused product (int8 modules)."""

    __slots__ = ("maps",)

    def __init__(self, maps):
        self.maps = list(maps)

    def prepare(self, rows: int) -> None:
        pass

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(x) for m in self.maps], dim=-1)


def _fused_linear(linears, *, pack: bool) -> _Linear:
    """One fp32 map computing ``cat([l(x) for l in linears], -1)``, from ``nn.Linear`` s without bias.

    The modules' weights become views into the fused matrix, so fusing costs no memory and
    the model itself computes what it did before.
    """
    weights = [lin.weight for lin in linears]
    fused = torch.cat([w.detach() for w in weights], dim=0)
    start = 0
    for lin, w in zip(linears, weights):
        lin.weight = torch.nn.Parameter(fused[start : start + w.shape[0]], requires_grad=False)
        start += w.shape[0]
    return _Linear(fused, pack=pack)


def _map(module, *, pack: bool):
    """The fastest way to apply ``module`` (an ``nn.Linear`` without bias, or an int8 one) to ``(rows, in)``."""
    if type(module) is torch.nn.Linear:
        return _Linear(module.weight, pack=pack)
    return _Module(module)


def _maps(modules, *, pack: bool, fused_int8: dict):
    """One map for several projections of the same input: fused fp32 or int8, else their calls concatenated."""
    if all(type(m) is torch.nn.Linear for m in modules):
        return _fused_linear(modules, pack=pack)
    fused = fused_int8.get(tuple(id(m) for m in modules))
    if fused is not None:
        return _Module(fused)
    return _Concat([_Module(m) for m in modules])


#: int8 schemes for ``fast`` (weights int8 with one scale per output channel in all of them):
#:
#: - ``"split"``: every row's activations are mapped onto [−1, 1] on their own and quantized, and
#:   their quantization error goes through the same int8 product as extra rows: ~14-bit
#:   activations, so the arithmetic is that of int8 *weights* only (fp32 activations).
#: - ``"rows"``: the same, without the error rows (7-bit activations, one range per row).
#: - ``"dynamic"``: torch's dynamic quantization (7-bit activations, one range per call, shared
#:   by every row of the call: the classifier-free-guidance pair, or a whole batch).
INT8_SCHEMES = ("split", "rows", "dynamic")
DEFAULT_INT8_SCHEME = "split"


def quantize_int8(model, *, scheme: str = DEFAULT_INT8_SCHEME, weights: dict | None = None,
                  keep_fp32: tuple[str, ...] = ()) -> dict:
    """int8-quantize, in place, every ``nn.Linear`` of the MusicGen decoder that runs once per token.

    Weights become int8 with one symmetric scale per output channel (``scale = max|w| / 127.5``),
    products run in FBGEMM's int8 kernels; ``scheme`` (one of :data:`INT8_SCHEMES`) says how
    activations are quantized (:class:`Int8RowsLinear` for ``"split"`` and ``"rows"``; a
    ``torch.ao.nn.quantized.dynamic.Linear`` for ``"dynamic"``). The cross-attention key/value
    projections run once per prompt, not per token, so they keep fp32 weights (no speed to gain,
    only precision to lose). The query and output projections become int8 like the rest:
    folding them in fp32 into the prompt's keys and values, as ``exact`` does
    (:meth:`LeanDecoder.encode_prompt`), made an int8 step slower, though it reads about as
    many bytes.

    ``weights`` (from :func:`int8_weights` of an earlier run, e.g. a prepared-weights cache)
    skips the rounding: ``{module name: (int8 rows, per-row scales)}``. Modules whose name (in
    the decoder) starts with one of ``keep_fp32`` stay fp32.

    Returns the fused products for :class:`LeanDecoder`: each layer's q/k/v and the LM heads
    as one int8 Linear, keyed by the ids of the modules it stands for. Their int8 rows and
    scales are those of the modules, concatenated, and every activation row is quantized the
    same way for all of them, so a fused output equals the modules' outputs concatenated, bit
    for bit, in one call instead of several.
    """
    import warnings

    if scheme not in INT8_SCHEMES:
        raise ValueError(f"int8 scheme must be one of {INT8_SCHEMES}, got {scheme!r}")
    decoder = model.decoder
    layers = decoder.model.decoder.layers
    skip = set()
    for layer in layers:
        ca = layer.encoder_attn
        skip.update({id(ca.k_proj), id(ca.v_proj)})
    names = {id(m): name for name, m in decoder.named_modules()}
    targets = [
        (parent, name, child)
        for parent in decoder.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear and id(child) not in skip
        and not names[id(child)].startswith(tuple(keep_fp32) or ("\0",))
    ]
    kept = {id(c) for _, _, c in targets}
    groups = [[layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj] for layer in layers]
    groups.append(list(decoder.lm_heads))
    groups = [group for group in groups if all(id(m) in kept for m in group)]
    if not all(m.bias is None for group in groups for m in group):
        groups = []

    def quantize(child):
        if weights is not None and names[id(child)] in weights:
            return weights[names[id(child)]]
        return int8_rows(child.weight.detach())

    build = _int8_linear if scheme == "dynamic" else (lambda parts, bias: Int8RowsLinear.from_parts(
        parts, bias, split=scheme == "split"))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch 2.13 marks torch.ao quantization deprecated; it still works
        quantized = dict(zip((id(c) for _, _, c in targets), _parallel_map(quantize, [c for _, _, c in targets])))
        jobs = [([quantized[id(c)]], c.bias) for _, _, c in targets]
        jobs += [([quantized[id(m)] for m in group], None) for group in groups]
        built = _parallel_map(lambda job: build(*job), jobs)
    replaced = {}
    for (parent, name, child), qlinear in zip(targets, built):
        setattr(parent, name, qlinear)
        qlinear.int8_parts = quantized[id(child)]  # what int8_weights hands to a cache
        replaced[id(child)] = qlinear
    model.int8_scheme = scheme
    return {tuple(id(replaced[id(m)]) for m in group): fused for group, fused in zip(groups, built[len(targets):])}


def int8_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ints, scales)``: ``weight ≈ ints · scales[:, None]``, int8 with one symmetric scale per row.

    ``scale = max|w_row| / 127.5`` (floored at 1e-8), ``ints = clamp(round(w / scale), −128, 127)``;
    the largest weight of a row lands on ±127 (±127.5 rounds to ±128, clamped): error ≤ scale / 2.
    """
    scale = weight.abs().amax(dim=1).clamp_min(1e-8) / 127.5
    ints = torch.round(weight / scale[:, None]).clamp_(-128, 127).to(torch.int8)
    return ints, scale.double()


def int8_weights(model) -> dict:
    """``{module name: (int8 rows, scales)}`` of the decoder's int8 Linears (after :func:`quantize_int8`)."""
    return {name: module.int8_parts for name, module in model.decoder.named_modules()
            if getattr(module, "int8_parts", None) is not None}


class Int8RowsLinear(torch.nn.Module):
    """``y = x · Wᵀ (+ b)`` with ``W`` int8 per output channel and each activation row quantized on its own.

    FBGEMM's dynamic int8 product quantizes its whole input with one range. Here every row
    ``x`` is first mapped onto [−1, 1] by its own affine map, ``x̂ = (x − c) / h`` with
    ``c = (max + min) / 2`` and ``h = (max − min) / 2``, and one extra row ``(−1, 1, 0, …)``
    pins the range FBGEMM sees to exactly [−1, 1]. It then quantizes with step
    ``s = 2 / 127`` (7 bits: without VNNI, FBGEMM's u8·s8 pair sums saturate int16 at 8 bits)
    and the output is undone row by row: ``y = h · (Ŵ x̂) + c · Ŵ·1``, ``Ŵ·1`` the
    dequantized weights' row sums. Rows never share a range, so a row's output is the same,
    bit for bit, whatever else is in the batch (integer sums are exact).

    With ``split``, each row's quantization error ``x̂ − s · round(x̂ / s)`` (within ±s/2)
    is scaled by ``2 / s`` and sent through the same product as extra rows, and their output
    is added back times ``s / 2``: activations carry ~14 bits, so what remains is the error of
    the int8 weights. The weights are read once for all rows.
    """

    STEP = 2.0 / 127.0

    def __init__(self, ints: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None = None, *,
                 split: bool = True):
        super().__init__()
        self.out_features, self.in_features = int(ints.shape[0]), int(ints.shape[1])
        self.split = bool(split)
        zeros = torch.zeros(ints.shape[0], dtype=torch.long)
        qweight = torch._make_per_channel_quantized_tensor(ints, scales.double(), zeros, 0)
        self._packed = torch.ops.quantized.linear_prepack(qweight, None)
        self.register_buffer("weight_sum", (ints.float().sum(1) * scales.float()), persistent=False)
        self.register_buffer("bias", None if bias is None else bias.detach().float(), persistent=False)
        pin = torch.zeros(1, self.in_features)
        pin[0, 0], pin[0, min(1, self.in_features - 1)] = -1.0, 1.0
        self.register_buffer("pin", pin, persistent=False)
        self.int8_parts = None

    @classmethod
    def from_parts(cls, parts: list, bias, *, split: bool) -> "Int8RowsLinear":
        """One product from ``(int8 rows, scales)`` parts stacked in order (a fused q/k/v, the LM heads)."""
        ints = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        scales = torch.cat([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        return cls(ints, scales, bias, split=split)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, self.in_features).float()
        rows = x.shape[0]
        low, high = torch.aminmax(x, dim=1, keepdim=True)
        center = (high + low) * 0.5
        half = ((high - low) * 0.5).clamp_min_(1e-20)
        unit = ((x - center) / half).clamp_(-1.0, 1.0)
        if self.split:
            step = self.STEP
            error = (unit - torch.round(unit * (1.0 / step)).clamp_(-64.0, 63.0) * step) * (2.0 / step)
            y = torch.ops.quantized.linear_dynamic(torch.cat([unit, error, self.pin]), self._packed, True)
            out = torch.add(y[:rows], y[rows : 2 * rows], alpha=step / 2.0)
        else:
            out = torch.ops.quantized.linear_dynamic(torch.cat([unit, self.pin]), self._packed, True)[:rows]
        out = torch.addcmul(center * self.weight_sum, out, half)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, split={self.split}"


def _int8_linear(parts: list, bias):
    """A dynamic int8 Linear from ``(int8 rows, per-row scales)`` parts stacked in order."""
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    ints = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    scales = torch.cat([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    qweight = torch._make_per_channel_quantized_tensor(ints, scales, torch.zeros(ints.shape[0], dtype=torch.long), 0)
    # Built 1×1, then given its weight: the constructor packs a placeholder of the full size
    # otherwise, which doubles the cost of packing (as quantize_dynamic's from_float does).
    qlinear = QLinear(1, 1, bias_=bias is not None, dtype=torch.qint8)
    qlinear.in_features, qlinear.out_features = ints.shape[1], ints.shape[0]
    qlinear.set_weight_bias(qweight, None if bias is None else bias.detach().float())
    return qlinear


def _parallel_map(fn, items: list) -> list:
    """``[fn(x) for x in items]`` on a few threads.

    Quantizing and packing weights is memory-bound work in C++ that releases the GIL, so
    independent threads (no OpenMP barrier between them) share it out: int8-quantizing
    musicgen-small's decoder took 1.6 s on 2 threads against 2.7–3.2 s on 1, on 2 cores.
    """
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(len(items), os.cpu_count() or 1, 4))
    if workers == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="musicgen-pack") as pool:
        return list(pool.map(fn, items))


class _LayerWeights:
    __slots__ = ("ln1", "qkv", "o", "ln2", "cross_q", "cross_k", "cross_v", "cross_o", "ln3", "fc1", "fc2",
                 "cross_q_weight", "cross_o_weight")


def _norm(ln) -> tuple:
    return (ln.normalized_shape, ln.weight.detach(), ln.bias.detach(), ln.eps)


class LeanDecoder:
    """The MusicGen decoder as a lean step function with a preallocated cache.

    Build it with :func:`prepare` (once per loaded model). It holds views of the model's
    weights (fp32 q/k/v and LM heads fused into one matrix each, the modules' weights made
    views of it) plus, on an MKL build, MKL-packed copies of the fp32 matrices (about the
    decoder's size again, 1.4 GB for musicgen-small). An int8 decoder (:func:`quantize_int8`)
    is called through its own modules, with q/k/v and the LM heads fused (80 MB more).
    """

    def __init__(self, model, *, fused_int8: dict | None = None):
        fused_int8 = fused_int8 or {}
        decoder = model.decoder
        inner = decoder.model.decoder
        config = decoder.config
        self.model = model
        self.num_codebooks = int(decoder.num_codebooks)
        self.hidden = int(config.hidden_size)
        self.heads = int(config.num_attention_heads)
        self.head_dim = self.hidden // self.heads
        self.vocab = int(config.vocab_size)
        self.device = next(model.parameters()).device
        pack = self.device.type == "cpu" and _mkl_packing_available()
        self.embed = [emb.weight.detach() for emb in inner.embed_tokens]
        self.dtype = self.embed[0].dtype
        self.positions = inner.embed_positions
        self.final_norm = _norm(inner.layer_norm)
        self.layers: list[_LayerWeights] = []
        for layer in inner.layers:
            w = _LayerWeights()
            sa, ca = layer.self_attn, layer.encoder_attn
            w.ln1 = _norm(layer.self_attn_layer_norm)
            w.ln2 = _norm(layer.encoder_attn_layer_norm)
            w.ln3 = _norm(layer.final_layer_norm)
            w.qkv = _maps([sa.q_proj, sa.k_proj, sa.v_proj], pack=pack, fused_int8=fused_int8)
            w.o = _map(sa.out_proj, pack=pack)
            w.cross_q = _map(ca.q_proj, pack=pack)
            w.cross_o = _map(ca.out_proj, pack=pack)
            w.cross_k, w.cross_v = ca.k_proj, ca.v_proj  # once per prompt, through the modules
            # fp32 weights to fold into the prompt's keys and values (see encode_prompt); None if int8
            w.cross_q_weight = ca.q_proj.weight.detach() if type(ca.q_proj) is torch.nn.Linear else None
            w.cross_o_weight = ca.out_proj.weight.detach() if type(ca.out_proj) is torch.nn.Linear else None
            w.fc1 = _map(layer.fc1, pack=pack)
            w.fc2 = _map(layer.fc2, pack=pack)
            self.layers.append(w)
        self.lm_heads = _maps(list(decoder.lm_heads), pack=pack, fused_int8=fused_int8)

    # ------------------------------------------------------------------ prompt

    def encode_prompt(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[tuple]:
        """Text encoder → per layer, what a step needs for cross-attention (conditional row only).

        The text states equal transformers': T5 encoder, ``enc_to_dec_proj`` when the widths
        differ, times the attention mask; padded positions (mask 0) are dropped, which is what
        masking them does. Per layer and head ``h`` the keys ``K_h`` and values ``V_h``
        (``S × d`` for ``S`` text positions, ``d`` = head size) are then fixed for the whole clip,
        so the query and output projections are folded into them (:meth:`_fold_cross`):
        a step computes ``softmax(x · A)`` and multiplies by ``B``, reading ``2 · D · H · S``
        numbers instead of the ``2 · D²`` of the two projections (``D`` = width, ``H`` heads).
        For musicgen-small and a 12-token prompt that is 0.4 M instead of 2.1 M per layer, 10 %
        of a step's weight reads. A prompt of ``d`` or more tokens would read more, so it keeps
        the projections (``("keys", K, V)`` entries instead of ``("folded", A, B)``).
        """
        model = self.model
        hidden = model.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if getattr(model, "enc_to_dec_proj", None) is not None:
            hidden = model.enc_to_dec_proj(hidden)
        hidden = hidden * attention_mask[..., None]
        keep = attention_mask[0].bool()
        hidden = hidden[:, keep].to(self.dtype)  # (1, S, D)
        length = hidden.shape[1]
        cross = []
        for w in self.layers:
            k = w.cross_k(hidden).view(1, length, self.heads, self.head_dim).transpose(1, 2).contiguous()
            v = w.cross_v(hidden).view(1, length, self.heads, self.head_dim).transpose(1, 2).contiguous()
            folded = self._fold_cross(w, k[0], v[0]) if length < self.head_dim else None
            cross.append(("keys", k, v) if folded is None else ("folded", *folded))
        return cross

    def _fold_cross(self, w: _LayerWeights, k: torch.Tensor, v: torch.Tensor) -> tuple | None:
        """``A`` (``D × H·S``) and ``B`` (``H·S × D``) with ``x·Wqᵀ`` attention ≡ ``softmax_h(x·A)·B``.

        Per head, ``scores_h = (x · Wq_hᵀ) · K_hᵀ / √d = x · (Wq_hᵀ · K_hᵀ / √d)`` and the
        output ``Σ_h p_h · V_h · Wo_hᵀ``, so ``A_h = Wq_hᵀ K_hᵀ / √d`` and ``B_h = V_h Wo_hᵀ``
        (the same sums in another order: equal up to fp32 rounding). None when the projections
        are not fp32 ``nn.Linear`` s (int8 weights stay on the plain path).
        """
        if w.cross_q_weight is None or w.cross_o_weight is None:
            return None
        heads, hd, d = self.heads, self.head_dim, self.hidden
        wq = w.cross_q_weight.view(heads, hd, d)  # rows of head h: its query projection
        wo = w.cross_o_weight.view(d, heads, hd)  # columns of head h: its share of the output
        a = torch.einsum("hsk,hkD->Dhs", k, wq).reshape(d, -1) * hd ** -0.5
        b = torch.einsum("hsk,Dhk->hsD", v, wo).reshape(-1, d)
        return a.contiguous(), b.contiguous()

    # ------------------------------------------------------------------ one step

    def _step(self, ids: torch.Tensor, position: int, guided: bool, cross: list, cache: list) -> torch.Tensor:
        """Logits ``(rows, codebooks, vocab)`` for the token columns ``ids`` ``(clips, codebooks)`` at ``position``.

        Rows are the clips' conditional rows, then (``guided``) their null-text rows in the
        same order. ``cross[c]`` is clip ``c``'s :meth:`encode_prompt`.
        """
        clips = ids.shape[0]
        h = self.embed[0][ids[:, 0]]
        for k in range(1, self.num_codebooks):
            h = h + self.embed[k][ids[:, k]]
        h = h + self.positions.weights[position].to(h.dtype)
        h = torch.cat([h, h]) if guided else h.contiguous()  # CFG rows share their clip's tokens
        rows = h.shape[0]
        heads, hd, d = self.heads, self.head_dim, self.hidden
        end = position + 1
        for index, (w, (kc, vc)) in enumerate(zip(self.layers, cache)):
            x = F.layer_norm(h, *w.ln1)
            q, k, v = w.qkv(x).view(rows, 3, heads, hd).unbind(1)
            kc[:, :, position] = k
            vc[:, :, position] = v
            att = F.scaled_dot_product_attention(q.unsqueeze(2), kc[:, :, :end], vc[:, :, :end])
            h = h + w.o(att.reshape(rows, d))
            # Cross-attention, conditional rows only (the null text gives the others exactly 0).
            x = F.layer_norm(h[:clips], *w.ln2)
            keyed = [c for c in range(clips) if cross[c][index][0] == "keys"]
            for c in range(clips):
                kind, c1, c2 = cross[c][index]
                if kind == "folded":  # c1 = A, c2 = B (see encode_prompt)
                    weights = torch.softmax(torch.mm(x[c : c + 1], c1).view(heads, -1), dim=-1)
                    h[c : c + 1] += torch.mm(weights.view(1, -1), c2)
            if keyed:  # c1, c2 = keys, values; the projections run once for all such clips
                queries = w.cross_q(x[keyed]).view(len(keyed), heads, 1, hd)
                att = torch.cat([F.scaled_dot_product_attention(queries[j : j + 1], *cross[c][index][1:])
                                 for j, c in enumerate(keyed)])
                h[keyed] += w.cross_o(att.reshape(len(keyed), d))
            x = F.layer_norm(h, *w.ln3)
            h = h + w.fc2(F.gelu(w.fc1(x)))
        h = F.layer_norm(h, *self.final_norm)
        return self.lm_heads(h).view(rows, self.num_codebooks, self.vocab)

    def _new_cache(self, rows: int, length: int) -> list:
        shape = (rows, self.heads, length, self.head_dim)
        dtype = self.dtype
        return [
            (torch.zeros(shape, dtype=dtype, device=self.device), torch.zeros(shape, dtype=dtype, device=self.device))
            for _ in self.layers
        ]

    def prepare_rows(self, rows: int) -> None:
        """Prepack the fp32 weights for batches of ``rows`` (all but cross-attention's, see the comment)."""
        # Cross-attention's q/o maps serve only prompts too long to fold (see encode_prompt):
        # they run unpacked; packing them would cost 0.2 GB of copies for a path rarely taken.
        jobs = [(lin, rows) for w in self.layers for lin in (w.qkv, w.o, w.fc1, w.fc2)]
        jobs.append((self.lm_heads, rows))
        _parallel_map(lambda job: job[0].prepare(job[1]), jobs)

    # ------------------------------------------------------------------ sampling

    def delay_pattern(self, steps: int) -> tuple[torch.Tensor, int, int]:
        """transformers' delay-pattern mask ``(codebooks, steps + 1)`` (−1 = sampled), start id, pad id."""
        config = self.model.generation_config
        start = int(config.decoder_start_token_id if config.decoder_start_token_id is not None else config.bos_token_id)
        pad = int(config.pad_token_id) if config.pad_token_id is not None else start
        first = torch.full((self.num_codebooks, 1), start, dtype=torch.long, device=self.device)
        _, pattern = self.model.decoder.build_delay_pattern_mask(first, pad_token_id=start, max_length=steps + 1)
        return pattern, start, pad

    @torch.inference_mode()
    def sample(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        steps: int,
        guidance_scale: float,
        temperature: float,
        top_k: int,
        generator: torch.Generator,
        on_step: StepCallback | None = None,
        on_logits: Callable[[int, torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """Sample ``steps`` new token columns for one prompt; returns the codes ``(1, 1, codebooks, frames)``.

        ``frames = steps − (codebooks per channel − 1)``: the delay pattern's padding is removed,
        exactly as transformers does before EnCodec decodes. ``on_step(tokens)`` is called after
        every step with the token matrix so far ``(codebooks, step + 2)`` (column 0 is the start
        token); it may raise to cancel. ``on_logits(step, logits)`` receives each step's fp32
        logits ``(rows, codebooks, vocab)`` (row 0 conditional, row 1 null text) before sampling.
        """
        codes = self.sample_batch(
            [(input_ids, attention_mask)], steps=steps, guidance_scale=guidance_scale, temperature=temperature,
            top_k=top_k, generators=[generator], on_step=None if on_step is None else (lambda t: on_step(t[0])),
            on_logits=on_logits,
        )
        return codes[0]

    @torch.inference_mode()
    def sample_batch(
        self,
        prompts: list[tuple[torch.Tensor, torch.Tensor]],
        *,
        steps: int,
        guidance_scale: float,
        temperature: float,
        top_k: int,
        generators: list[torch.Generator],
        on_step: StepCallback | None = None,
        on_logits: Callable[[int, torch.Tensor], None] | None = None,
    ) -> list[torch.Tensor]:
        """Sample ``steps`` token columns for several prompts at once; their codes, each ``(1, 1, codebooks, frames)``.

        ``prompts`` are ``(input_ids, attention_mask)`` pairs of one prompt each (encoded on
        their own, as a single run encodes them); clip ``c`` draws from ``generators[c]`` only.
        Every weight is read once per step for all ``2 × clips`` rows. Rows never mix: clip ``c``
        gets the tokens :meth:`sample` gives its prompt with ``generators[c]``, up to the float
        rounding of a product over more rows (int8 :class:`Int8RowsLinear` rows: bit for bit).
        ``on_step(tokens)`` gets ``(clips, codebooks, step + 2)``; ``on_logits(step, logits)``
        gets ``(rows, codebooks, vocab)``, the clips' conditional rows first.
        """
        clips = len(prompts)
        if clips == 0 or len(generators) != clips:
            raise ValueError("sample_batch needs one generator per prompt, and at least one prompt")
        guided = guidance_scale is not None and guidance_scale > 1
        rows = clips * (2 if guided else 1)
        self.prepare_rows(rows)
        cross = [self.encode_prompt(ids, mask) for ids, mask in prompts]
        pattern, start, pad = self.delay_pattern(steps)
        tokens = pattern.clone()
        tokens[:, 0] = torch.where(pattern[:, 0] == -1, start, pattern[:, 0])
        tokens = tokens.expand(clips, -1, -1).clone()  # (clips, codebooks, steps + 1)
        cache = self._new_cache(rows, steps + 1)
        for step in range(steps):
            logits = self._step(tokens[:, :, step], step, guided, cross, cache).float()
            if on_logits is not None:
                on_logits(step, logits)
            if guided:
                cond, uncond = logits[:clips], logits[clips:]
                scores = uncond + (cond - uncond) * guidance_scale
            else:
                scores = logits
            if temperature is not None and temperature != 1.0:
                scores = scores / temperature
            if top_k:
                k = min(int(top_k), scores.shape[-1])
                scores = scores.masked_fill(scores < torch.topk(scores, k)[0][..., -1, None], -float("inf"))
            probs = F.softmax(scores, dim=-1)
            column = pattern[:, step + 1]
            for c in range(clips):
                sampled = torch.multinomial(probs[c], num_samples=1, generator=generators[c]).squeeze(1)
                tokens[c, :, step + 1] = torch.where(column == -1, sampled, column)
            if on_step is not None:
                on_step(tokens[:, :, : step + 2])
        return [tokens[c][tokens[c] != pad].reshape(1, self.num_codebooks, -1)[None] for c in range(clips)]

    @torch.inference_mode()
    def logits_for(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, tokens: torch.Tensor, *, guidance_scale: float
    ) -> torch.Tensor:
        """Teacher forcing: the logits ``(steps, rows, codebooks, vocab)`` for a given token matrix.

        ``tokens`` is ``(codebooks, steps + 1)`` as :meth:`sample` builds it (start column first,
        delay-pattern positions already set); row 0 is conditional, row 1 (with guidance) null-text.
        """
        guided = guidance_scale is not None and guidance_scale > 1
        self.prepare_rows(2 if guided else 1)
        cross = [self.encode_prompt(input_ids, attention_mask)]
        steps = tokens.shape[1] - 1
        cache = self._new_cache(2 if guided else 1, steps + 1)
        return torch.stack([self._step(tokens[None, :, s], s, guided, cross, cache).float() for s in range(steps)])


def prepare(model, *, rows: int = 2, fused_int8: dict | None = None) -> LeanDecoder:
    """Build the lean decoder for a loaded, eval-mode MusicGen.

    For int8, quantize first with :func:`quantize_int8` and pass what it returns as
    ``fused_int8``. fp32 weights are prepacked for ``rows`` (2 = a classifier-free-guidance
    pair) now, so that the first request does not pay for it; another row count is packed
    on first use.
    """
    lean = LeanDecoder(model, fused_int8=fused_int8)
    lean.prepare_rows(rows)
    return lean
