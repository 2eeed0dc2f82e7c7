"""Triton kernels of the depthwise "same" convolution (stride 1, odd kernels).

Only ``@triton.jit`` functions live here; :mod:`.triton_depthwise` picks the
block sizes, launches them and wraps them in autograd. That module loads this
file once per mode (compiled, or interpreted under ``TRITON_INTERPRET=1``),
so nothing else should be added here.

Design. A direct loop over the taps of a 51 x 5 kernel costs one shifted
tile load per multiply-add. Instead, for a tall kernel (``kh >= kw``) the
output tile of one kernel column ``j`` is a matrix product with a banded
(Toeplitz) matrix built from that column,

    out[h, w] += sum_r T_j[h, r] * X_j[r, w],   T_j[h, r] = k[r - h, j],

where ``X_j`` are the ``BH + kh - 1`` input rows of the tile's halo shifted
by ``j`` columns. ``tl.dot`` then runs it on the tensor cores (fp32 inputs
as TF32 or 3xTF32, following torch's conv flag: see
``triton_depthwise._dot_options``) and each loaded input row serves every
output row of the tile; the band wastes ``(BH + kh - 1) / kh`` of the
products, cheap next to the loads it saves. A wide kernel uses the
transposed form (``X_i @ T_i`` over columns), and small kernels (at most
``triton_depthwise._DIRECT_MAX_TAPS`` = 9 taps, i.e. up to 3 x 3) a plain
tap loop.

The weight gradient ``G[i, j] = sum go[h, w] * x[h + i - ph, w + j - pw]``
is also a product: over K = positions ``(h, w')`` of a block of rows,
``A[i, k] = x[h + i - ph, w']`` (x rows shifted by ``i``) times
``B[k, j] = go[h, w' - j + pw]`` (go columns shifted by ``j``). Each program
sums a contiguous share of one channel's positions into a ``kh x kw``
accumulator and writes it to its own slot of a workspace, which the host
sums (a deterministic two-stage reduction, no atomics).

Only builtins of ``triton.language`` are used, not its ``@triton.jit``
helpers (``tl.cdiv``, ``tl.zeros``, reductions): those are compiled or
interpreted depending on the mode when triton was first imported, and a
compiled helper cannot be called from an interpreted kernel.
"""
import triton
import triton.language as tl

#: Per-kernel evaluation modes of :func:`_conv_tile`.
MODE_DIRECT = tl.constexpr(0)
MODE_VERTICAL = tl.constexpr(1)
MODE_HORIZONTAL = tl.constexpr(2)


@triton.jit
def _conv_tile(acc, x_ptr, w_ptr, h0, w0, H, W, KH: tl.constexpr,
               KW: tl.constexpr, MODE: tl.constexpr, BH: tl.constexpr,
               BW: tl.constexpr, BK: tl.constexpr, UPCAST: tl.constexpr,
               PREC: tl.constexpr):
    """acc[BH, BW] += one kernel applied to the tile at (h0, w0).

    ``x_ptr``: the (n, c) input plane (H x W, contiguous); ``w_ptr``: the
    channel's KH x KW kernel in the input dtype.
    """
    PH: tl.constexpr = KH // 2
    PW: tl.constexpr = KW // 2
    offs_h = tl.arange(0, BH)
    offs_w = tl.arange(0, BW)
    offs_k = tl.arange(0, BK)
    if MODE == MODE_DIRECT:
        # Tiny kernels: one shifted (L1-resident) tile load per tap, as a
        # loop (unrolled taps keep all loads and their 64-bit addresses live
        # at once and run out of registers).
        rows = h0 + offs_h
        cols = w0 + offs_w
        for t in range(KH * KW):
            i = t // KW
            j = t % KW
            r = rows + (i - PH)
            cc = cols + (j - PW)
            m = ((r >= 0) & (r < H))[:, None] & ((cc >= 0) & (cc < W))[None, :]
            xv = tl.load(
                x_ptr + r[:, None] * W + cc[None, :], mask=m, other=0.)
            wv = tl.load(w_ptr + t)
            acc += xv.to(tl.float32) * wv.to(tl.float32)
    elif MODE == MODE_VERTICAL:
        # Halo rows r in [r_lo, r_hi) that exist in the map (input row
        # h0 - PH + r), and kernel columns j whose shifted tile overlaps it;
        # both ranges are non-empty because the tile starts inside the map.
        r_lo = tl.maximum(PH - h0, 0)
        r_hi = tl.minimum(H - h0 + PH, BH + KH - 1)
        j_lo = tl.maximum(PW - w0 - BW + 1, 0)
        j_hi = tl.minimum(W - w0 + PW, KW)
        n_r = (r_hi - r_lo + BK - 1) // BK
        # One flat loop (not nested) so the compiler pipelines the loads.
        for t in range((j_hi - j_lo) * n_r):
            j = j_lo + t // n_r
            r = r_lo + (t % n_r) * BK + offs_k
            cc = w0 + offs_w + (j - PW)
            xm = (r < r_hi)[:, None] & ((cc >= 0) & (cc < W))[None, :]
            xt = tl.load(
                x_ptr + (h0 - PH + r)[:, None] * W + cc[None, :],
                mask=xm,
                other=0.)
            d = r[None, :] - offs_h[:, None]
            wt = tl.load(
                w_ptr + d * KW + j, mask=(d >= 0) & (d < KH), other=0.)
            if UPCAST:
                xt = xt.to(tl.float32)
                wt = wt.to(tl.float32)
            acc = tl.dot(wt, xt, acc, input_precision=PREC)
    else:
        # Wide kernel: the transposed form, halo columns s (input column
        # w0 - PW + s) times the Toeplitz matrix of kernel row i.
        s_lo = tl.maximum(PW - w0, 0)
        s_hi = tl.minimum(W - w0 + PW, BW + KW - 1)
        i_lo = tl.maximum(PH - h0 - BH + 1, 0)
        i_hi = tl.minimum(H - h0 + PH, KH)
        n_s = (s_hi - s_lo + BK - 1) // BK
        for t in range((i_hi - i_lo) * n_s):
            i = i_lo + t // n_s
            s = s_lo + (t % n_s) * BK + offs_k
            rr = h0 + offs_h + (i - PH)
            xm = ((rr >= 0) & (rr < H))[:, None] & (s < s_hi)[None, :]
            xt = tl.load(
                x_ptr + rr[:, None] * W + (w0 - PW + s)[None, :],
                mask=xm,
                other=0.)
            d = s[:, None] - offs_w[None, :]
            wt = tl.load(
                w_ptr + i * KW + d, mask=(d >= 0) & (d < KW), other=0.)
            if UPCAST:
                xt = xt.to(tl.float32)
                wt = wt.to(tl.float32)
            acc = tl.dot(xt, wt, acc, input_precision=PREC)
    return acc


@triton.jit
def dw_conv_kernel(x0_ptr, x1_ptr, x2_ptr, k0_ptr, k1_ptr, k2_ptr, y0_ptr,
                   y1_ptr, y2_ptr, b_ptr, C, H, W, n_tw, n_tiles,
                   NUM_K: tl.constexpr, KH0: tl.constexpr, KW0: tl.constexpr,
                   MODE0: tl.constexpr, KH1: tl.constexpr, KW1: tl.constexpr,
                   MODE1: tl.constexpr, KH2: tl.constexpr, KW2: tl.constexpr,
                   MODE2: tl.constexpr, BK0: tl.constexpr, BK1: tl.constexpr,
                   BK2: tl.constexpr, SUM_OUT: tl.constexpr,
                   HAS_BIAS: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
                   UPCAST: tl.constexpr, PREC: tl.constexpr):
    """Up to three depthwise kernels on one output tile per program.

    Serves three uses: the forward (one input ``x0 = x1 = x2``, one output
    per kernel), the input gradient (one input per kernel, the grad outputs,
    with flipped kernels; outputs summed into ``y0``) and the cross deploy
    form (one input, summed output plus bias). All kernels of a tile run in
    the same program, back to back, so the tile's halo is read from DRAM
    once and re-read from L1/L2 by the others.

    Grid: ``N * C * n_tiles`` programs, the tiles of one plane adjacent.
    """
    pid = tl.program_id(0)
    nc = pid // n_tiles
    tile = pid % n_tiles
    h0 = (tile // n_tw) * BH
    w0 = (tile % n_tw) * BW
    c = nc % C
    plane = nc.to(tl.int64) * H * W
    rows = h0 + tl.arange(0, BH)
    cols = w0 + tl.arange(0, BW)
    out_off = plane + rows[:, None] * W + cols[None, :]
    out_mask = (rows < H)[:, None] & (cols < W)[None, :]

    acc = tl.full((BH, BW), 0., tl.float32)
    acc = _conv_tile(acc, x0_ptr + plane, k0_ptr + c * (KH0 * KW0), h0, w0, H,
                     W, KH0, KW0, MODE0, BH, BW, BK0, UPCAST, PREC)
    if not SUM_OUT:
        tl.store(
            y0_ptr + out_off, acc.to(y0_ptr.dtype.element_ty), mask=out_mask)
        acc = tl.full((BH, BW), 0., tl.float32)
    if NUM_K > 1:
        acc = _conv_tile(acc, x1_ptr + plane, k1_ptr + c * (KH1 * KW1), h0, w0,
                         H, W, KH1, KW1, MODE1, BH, BW, BK1, UPCAST, PREC)
        if not SUM_OUT:
            tl.store(
                y1_ptr + out_off,
                acc.to(y1_ptr.dtype.element_ty),
                mask=out_mask)
            acc = tl.full((BH, BW), 0., tl.float32)
    if NUM_K > 2:
        acc = _conv_tile(acc, x2_ptr + plane, k2_ptr + c * (KH2 * KW2), h0, w0,
                         H, W, KH2, KW2, MODE2, BH, BW, BK2, UPCAST, PREC)
        if not SUM_OUT:
            tl.store(
                y2_ptr + out_off,
                acc.to(y2_ptr.dtype.element_ty),
                mask=out_mask)
    if SUM_OUT:
        if HAS_BIAS:
            acc += tl.load(b_ptr + c).to(tl.float32)
        tl.store(
            y0_ptr + out_off, acc.to(y0_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def _wgrad_step(acc, x_ptr, g_ptr, hh, ww, valid, H, W, KH: tl.constexpr,
                KW: tl.constexpr, KHP: tl.constexpr, KWP: tl.constexpr,
                UPCAST: tl.constexpr, PREC: tl.constexpr):
    """acc += the weight-gradient contribution of the positions (hh, ww).

    ``hh``: grad-output rows, ``ww``: input columns (both [BK]); ``acc`` is
    [KHP, KWP], or [KWP, KHP] for a wide kernel so that the long side is
    the dot's M (tensor-core tiles are 64 rows high). The padding rows and
    columns of the tile are masked off: no memory traffic for them.
    """
    PH: tl.constexpr = KH // 2
    PW: tl.constexpr = KW // 2
    offs_i = tl.arange(0, KHP)
    offs_j = tl.arange(0, KWP)
    if KW > KH:
        # A^T[k, i] = x[hh + i - PH, ww];  B^T[j, k] = go[hh, ww - j + PW]
        xr = hh[:, None] + (offs_i[None, :] - PH)
        a = tl.load(
            x_ptr + xr * W + ww[:, None],
            mask=valid[:, None] & (xr >= 0) & (xr < H) &
            (offs_i < KH)[None, :],
            other=0.)
        gc = ww[None, :] + (PW - offs_j[:, None])
        b = tl.load(
            g_ptr + hh[None, :] * W + gc,
            mask=valid[None, :] & (gc >= 0) & (gc < W) &
            (offs_j < KW)[:, None],
            other=0.)
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(b, a, acc, input_precision=PREC)
    else:
        # A[i, k] = x[hh + i - PH, ww];  B[k, j] = go[hh, ww - j + PW]
        xr = hh[None, :] + (offs_i[:, None] - PH)
        a = tl.load(
            x_ptr + xr * W + ww[None, :],
            mask=valid[None, :] & (xr >= 0) & (xr < H) &
            (offs_i < KH)[:, None],
            other=0.)
        gc = ww[:, None] + (PW - offs_j[None, :])
        b = tl.load(
            g_ptr + hh[:, None] * W + gc,
            mask=valid[:, None] & (gc >= 0) & (gc < W) &
            (offs_j < KW)[None, :],
            other=0.)
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=PREC)
    return acc


@triton.jit
def _wgrad_store(acc, ws_ptr, KH: tl.constexpr, KW: tl.constexpr,
                 KHP: tl.constexpr, KWP: tl.constexpr):
    """Write the valid KH x KW part of ``acc`` (see :func:`_wgrad_step`)."""
    if KW > KH:
        j = tl.arange(0, KWP)[:, None]
        i = tl.arange(0, KHP)[None, :]
    else:
        i = tl.arange(0, KHP)[:, None]
        j = tl.arange(0, KWP)[None, :]
    tl.store(ws_ptr + i * KW + j, acc, mask=(i < KH) & (j < KW))


@triton.jit
def dw_wgrad_kernel(x_ptr, g0_ptr, g1_ptr, g2_ptr, ws0_ptr, ws1_ptr, ws2_ptr,
                    C, H, W, n_hb, n_wb, n_items, per_prog,
                    NUM_K: tl.constexpr, KH0: tl.constexpr, KW0: tl.constexpr,
                    KHP0: tl.constexpr, KWP0: tl.constexpr, KH1: tl.constexpr,
                    KW1: tl.constexpr, KHP1: tl.constexpr, KWP1: tl.constexpr,
                    KH2: tl.constexpr, KW2: tl.constexpr, KHP2: tl.constexpr,
                    KWP2: tl.constexpr, RB: tl.constexpr, BKW: tl.constexpr,
                    UPCAST: tl.constexpr, PREC: tl.constexpr):
    """Partial weight gradients of up to three kernels of the same input.

    Program (c, s) sums the positions of channel ``c`` in items
    ``[s * per_prog, (s + 1) * per_prog)``; an item is RB rows x BKW
    columns of one plane, items ordered (n, row block, column block). It
    writes ``ws_k[s, c]`` (fp32, KH_k x KW_k) for each kernel k.
    """
    c = tl.program_id(0)
    s = tl.program_id(1)
    BK: tl.constexpr = RB * BKW
    offs = tl.arange(0, BK)
    kr = offs // BKW
    kc = offs % BKW
    # Accumulators laid out [long side, short side] (see _wgrad_step).
    if KW0 > KH0:
        acc0 = tl.full((KWP0, KHP0), 0., tl.float32)
    else:
        acc0 = tl.full((KHP0, KWP0), 0., tl.float32)
    if KW1 > KH1:
        acc1 = tl.full((KWP1, KHP1), 0., tl.float32)
    else:
        acc1 = tl.full((KHP1, KWP1), 0., tl.float32)
    if KW2 > KH2:
        acc2 = tl.full((KWP2, KHP2), 0., tl.float32)
    else:
        acc2 = tl.full((KHP2, KWP2), 0., tl.float32)
    start = s * per_prog
    end = tl.minimum(start + per_prog, n_items)
    for item in range(start, end):
        wb = item % n_wb
        rest = item // n_wb
        hb = rest % n_hb
        n = rest // n_hb
        plane = (n * C + c).to(tl.int64) * H * W
        hh = hb * RB + kr
        ww = wb * BKW + kc
        valid = (hh < H) & (ww < W)
        acc0 = _wgrad_step(acc0, x_ptr + plane, g0_ptr + plane, hh, ww, valid,
                           H, W, KH0, KW0, KHP0, KWP0, UPCAST, PREC)
        if NUM_K > 1:
            acc1 = _wgrad_step(acc1, x_ptr + plane, g1_ptr + plane, hh, ww,
                               valid, H, W, KH1, KW1, KHP1, KWP1, UPCAST, PREC)
        if NUM_K > 2:
            acc2 = _wgrad_step(acc2, x_ptr + plane, g2_ptr + plane, hh, ww,
                               valid, H, W, KH2, KW2, KHP2, KWP2, UPCAST, PREC)
    slot = s * C + c
    _wgrad_store(acc0, ws0_ptr + slot * (KH0 * KW0), KH0, KW0, KHP0, KWP0)
    if NUM_K > 1:
        _wgrad_store(acc1, ws1_ptr + slot * (KH1 * KW1), KH1, KW1, KHP1, KWP1)
    if NUM_K > 2:
        _wgrad_store(acc2, ws2_ptr + slot * (KH2 * KW2), KH2, KW2, KHP2, KWP2)
