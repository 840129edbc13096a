"""BASS: Bayesian Adaptive Superpixel Segmentation on the CPU.

A CPU re-implementation of Uziel, Ronen & Freifeld, "Bayesian Adaptive
Superpixel Segmentation" (ICCV 2019). Pixels are 5-D points (x, y, L, a, b) in
a mixture with one component per superpixel. Each component has a colour mean
with a fixed diagonal colour covariance and a full 2×2 spatial covariance under
an inverse-Wishart prior whose strength is the component's prior pixel count.

Inference alternates

* an M-step (colour mean = sample mean; spatial covariance = posterior mode),
* an E-step that moves boundary pixels to a 4-neighbour's label when that raises
  the score, only if the move keeps every superpixel 4-connected (a simple-point
  test on the 3×3 neighbourhood), visiting pixels in four interleaved lattices so
  that no two 8-neighbours are updated from the same state,
* and, every few iterations, split and merge moves accepted by a
  marginal-likelihood ratio under a Normal-inverse-gamma colour model and the
  concentration ``alpha``. A split proposal clusters the superpixel's colours in
  two (2-means), keeps the 4-connected part of the first cluster around its seed,
  then the 4-connected part of the rest around the second seed, and gives the
  left-over pockets (which touch the first half) to the first half: both halves
  are connected by construction. Merges join adjacent superpixels, so they stay
  connected too.

The hard-EM default is deterministic. ``inference="gibbs"`` samples instead:
assignments from their conditional, spatial means and covariances from their
Normal-inverse-Wishart posterior, mixture weights from their Dirichlet
posterior, and split/merge moves with Metropolis-Hastings acceptance.

Differences from the CUDA reference (github.com/BGU-CS-VIL/BASS): the output is
always a set of 4-connected regions (a final connected-components pass is a
safety net that merges any fragment into a neighbour); split proposals use a
connected 2-means colour clustering instead of two spatial seeds next to the
centroid; merge partners are the most similar adjacent superpixel; the
marginal likelihoods use a weaker inverse-gamma prior (``prior_strength``).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from veil._jit import LazyKernels
from veil.errors import InvalidParameterError
from veil.segment import register_segmenter

__all__ = ["bass", "bass_guided"]


# --------------------------------------------------------------------------- lazy numba
# The kernels are compiled (or loaded from numba's cache) on the first call of any of them, so that
# importing veil.segment never imports numba (veil._jit).

_kernel = LazyKernels(globals())

_INFERENCE = ("em", "gibbs")

# 3×3 ring order: N, NE, E, SE, S, SW, W, NW (consecutive entries are 4-adjacent).
_RING_DY = np.array([-1, -1, 0, 1, 1, 1, 0, -1], dtype=np.int64)
_RING_DX = np.array([0, 1, 1, 1, 0, -1, -1, -1], dtype=np.int64)


def _simple_point_table() -> np.ndarray:
    """``table[mask]`` is True when removing the centre keeps its label 4-connected.

    ``mask`` has bit ``i`` set when ring pixel ``i`` shares the centre's label. The
    centre is removable when the same-label ring pixels that touch the centre
    (N, E, S, W: even bits) all lie in one circular run of the ring.
    """
    table = np.zeros(256, dtype=np.bool_)
    for mask in range(256):
        bits = [(mask >> i) & 1 for i in range(8)]
        if all(bits):
            table[mask] = True
            continue
        start = bits.index(0)
        runs_touching = 0
        in_run = False
        touches = False
        for j in range(1, 9):
            i = (start + j) % 8
            if bits[i]:
                if not in_run:
                    in_run, touches = True, False
                if i % 2 == 0:
                    touches = True
            elif in_run:
                runs_touching += touches
                in_run = False
        if in_run:
            runs_touching += touches
        table[mask] = runs_touching <= 1
    return table


_SIMPLE = _simple_point_table()


# --------------------------------------------------------------------------- init


@_kernel
def _hex_grid(h: int, w: int, area: float) -> np.ndarray:
    """Nearest-centre labels of a hexagonal lattice of about ``h * w / area`` cells.

    Rows of centres are ``dy`` apart and every other row is shifted by half a
    column; spacings are stretched slightly so whole rows and columns fit.
    """
    dx = math.sqrt(2.0 * area / math.sqrt(3.0))
    dy = dx * math.sqrt(3.0) / 2.0
    target = max(1.0, h * w / area)
    n_rows = min(max(1, int(round(h / dy))), int(round(target)))
    n_cols = max(1, int(round(target / n_rows)))
    dy = h / n_rows
    dx = w / n_cols
    labels = np.empty((h, w), dtype=np.int32)
    for y in range(h):
        r0 = int(y / dy)
        for x in range(w):
            best = 1e300
            lab = 0
            for r in range(r0 - 1, r0 + 2):
                if r < 0 or r >= n_rows:
                    continue
                cy = (r + 0.5) * dy
                shift = 0.25 * dx if r % 2 == 0 else 0.75 * dx
                c0 = int((x - shift) / dx)
                for c in range(c0 - 1, c0 + 3):
                    if c < 0 or c >= n_cols:
                        continue
                    cx = shift + c * dx
                    d = (y - cy) ** 2 + (x - cx) ** 2
                    if d < best:
                        best = d
                        lab = r * n_cols + c
            labels[y, x] = lab
    return labels


@_kernel
def _compact(labels: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Renumber ``labels`` (values < ``size``) to 0..k-1 in place; return the old→new map and k."""
    mapping = -np.ones(size, dtype=np.int64)
    k = 0
    h, w = labels.shape
    for y in range(h):
        for x in range(w):
            v = labels[y, x]
            if mapping[v] < 0:
                mapping[v] = k
                k += 1
            labels[y, x] = mapping[v]
    return mapping, k


@_kernel
def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@_kernel
def _connected(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Split every label into its 4-connected components; merge components < ``min_size``.

    A small component is merged into the adjacent component it shares most
    boundary with (largest first on ties), repeatedly, so every output label is
    one 4-connected region. Returns consecutive int32 labels.
    """
    h, w = labels.shape
    n = h * w
    cc = -np.ones(n, dtype=np.int64)
    stack = np.empty(n, dtype=np.int64)
    n_cc = 0
    for s in range(n):
        if cc[s] >= 0:
            continue
        lab = labels[s // w, s % w]
        cc[s] = n_cc
        top = 0
        stack[0] = s
        top = 1
        while top > 0:
            top -= 1
            p = stack[top]
            py = p // w
            px = p % w
            for d in range(4):
                qy = py + (d == 1) - (d == 0)
                qx = px + (d == 3) - (d == 2)
                if qy < 0 or qy >= h or qx < 0 or qx >= w:
                    continue
                q = qy * w + qx
                if cc[q] < 0 and labels[qy, qx] == lab:
                    cc[q] = n_cc
                    stack[top] = q
                    top += 1
        n_cc += 1
    size = np.zeros(n_cc, dtype=np.int64)
    for p in range(n):
        size[cc[p]] += 1
    parent = np.arange(n_cc)
    if n_cc > 1 and min_size > 1:
        changed = True
        while changed:
            changed = False
            # best neighbour per small root: the one with the longest shared border
            best = -np.ones(n_cc, dtype=np.int64)
            best_len = np.zeros(n_cc, dtype=np.int64)
            # count shared border per (small root, neighbour root) by scanning pairs;
            # a small region's neighbours are few, so track them in a tiny list.
            nb_root = -np.ones((n_cc, 8), dtype=np.int64)
            nb_len = np.zeros((n_cc, 8), dtype=np.int64)
            for y in range(h):
                for x in range(w):
                    a = _find(parent, cc[y * w + x])
                    for d in range(2):
                        qy = y + d
                        qx = x + 1 - d
                        if qy >= h or qx >= w:
                            continue
                        b = _find(parent, cc[qy * w + qx])
                        if a == b:
                            continue
                        for u, v in ((a, b), (b, a)):
                            if size[u] >= min_size:
                                continue
                            for j in range(8):
                                if nb_root[u, j] == v:
                                    nb_len[u, j] += 1
                                    break
                                if nb_root[u, j] < 0:
                                    nb_root[u, j] = v
                                    nb_len[u, j] = 1
                                    break
            for u in range(n_cc):
                if parent[u] != u or size[u] >= min_size:
                    continue
                for j in range(8):
                    v = nb_root[u, j]
                    if v < 0:
                        break
                    if nb_len[u, j] > best_len[u] or (
                        nb_len[u, j] == best_len[u] and size[v] > size[best[u]]
                    ):
                        best[u] = v
                        best_len[u] = nb_len[u, j]
            for u in range(n_cc):
                if parent[u] != u or size[u] >= min_size or best[u] < 0:
                    continue
                ru = _find(parent, u)
                rv = _find(parent, best[u])
                if ru == rv or size[ru] >= min_size:
                    continue
                parent[ru] = rv
                size[rv] += size[ru]
                changed = True
    out = np.empty((h, w), dtype=np.int32)
    mapping = -np.ones(n_cc, dtype=np.int64)
    k = 0
    for p in range(n):
        r = _find(parent, cc[p])
        if mapping[r] < 0:
            mapping[r] = k
            k += 1
        out[p // w, p % w] = mapping[r]
    return out


# ------------------------------------------------------------------ statistics


@_kernel
def _stats(feat: np.ndarray, labels: np.ndarray, k: int, squares: bool = True):
    """Per superpixel: pixel count, sums of x and y, of x², xy and y², of each colour channel and (``squares``;
    the E-M loop does not read them) of its square."""
    h, w, c = feat.shape
    cnt = np.zeros(k)
    s_sp = np.zeros((k, 2))
    ss_sp = np.zeros((k, 3))
    s_c = np.zeros((k, c))
    ss_c = np.zeros((k, c if squares else 0))
    for y in range(h):
        for x in range(w):
            j = labels[y, x]
            cnt[j] += 1.0
            s_sp[j, 0] += x
            s_sp[j, 1] += y
            ss_sp[j, 0] += x * x
            ss_sp[j, 1] += x * y
            ss_sp[j, 2] += y * y
            if squares:
                for ch in range(c):
                    v = feat[y, x, ch]
                    s_c[j, ch] += v
                    ss_c[j, ch] += v * v
            else:
                for ch in range(c):
                    s_c[j, ch] += feat[y, x, ch]
    return cnt, s_sp, ss_sp, s_c, ss_c


@_kernel
def _inv_wishart_2(nu: float, psi00: float, psi01: float, psi11: float):
    """Draw a 2×2 covariance from IW(nu, Psi) (Bartlett decomposition of its inverse)."""
    # W ~ Wishart(nu, Psi^-1); Sigma = W^-1.
    det = psi00 * psi11 - psi01 * psi01
    i00 = psi11 / det
    i01 = -psi01 / det
    i11 = psi00 / det
    l00 = math.sqrt(i00)
    l10 = i01 / l00
    l11 = math.sqrt(max(i11 - l10 * l10, 1e-300))
    a00 = math.sqrt(np.random.chisquare(nu))
    a11 = math.sqrt(np.random.chisquare(nu - 1.0))
    a10 = np.random.normal()
    # B = L A (lower triangular)
    b00 = l00 * a00
    b10 = l10 * a00 + l11 * a10
    b11 = l11 * a11
    w00 = b00 * b00
    w01 = b00 * b10
    w11 = b10 * b10 + b11 * b11
    dw = w00 * w11 - w01 * w01
    return w11 / dw, -w01 / dw, w00 / dw


@_kernel
def _mstep(cnt, s_sp, ss_sp, s_c, prior_count, var_c, gibbs, alpha):
    """Component parameters: colour means, spatial means, inverse spatial covariances, log dets."""
    k = cnt.shape[0]
    c = s_c.shape[1]
    mu_c = np.zeros((k, c))
    mu_s = np.zeros((k, 2))
    icov = np.zeros((k, 3))
    logdet = np.zeros(k)
    logw = np.zeros(k)
    total = 0.0
    for j in range(k):
        n = cnt[j]
        if n <= 0:
            continue
        mx = s_sp[j, 0] / n
        my = s_sp[j, 1] / n
        sxx = ss_sp[j, 0] - n * mx * mx
        sxy = ss_sp[j, 1] - n * mx * my
        syy = ss_sp[j, 2] - n * my * my
        n0 = max(prior_count[j], 1.0)
        # inverse-Wishart prior: nu0 = prior count, mode = a disk of n0 pixels
        var0 = n0 / (4.0 * math.pi) + 0.25
        nu0 = n0
        p00 = var0 * (nu0 + 3.0) + sxx
        p01 = sxy
        p11 = var0 * (nu0 + 3.0) + syy
        if gibbs:
            c00, c01, c11 = _inv_wishart_2(nu0 + n, p00, p01, p11)
            # mean | Sigma ~ N(sample mean, Sigma / n)
            l00 = math.sqrt(c00 / n)
            l10 = c01 / n / l00
            l11 = math.sqrt(max(c11 / n - l10 * l10, 1e-300))
            z0 = np.random.normal()
            z1 = np.random.normal()
            mx += l00 * z0
            my += l10 * z0 + l11 * z1
            for ch in range(c):
                mu_c[j, ch] = s_c[j, ch] / n + math.sqrt(var_c[ch] / n) * np.random.normal()
            g = np.random.gamma(alpha / k + n, 1.0)
            logw[j] = g
            total += g
        else:
            dof = nu0 + n + 3.0
            c00 = p00 / dof
            c01 = p01 / dof
            c11 = p11 / dof
            for ch in range(c):
                mu_c[j, ch] = s_c[j, ch] / n
        det = c00 * c11 - c01 * c01
        if det < 1e-12:
            det = 1e-12
        icov[j, 0] = c11 / det
        icov[j, 1] = -c01 / det
        icov[j, 2] = c00 / det
        logdet[j] = math.log(det)
        mu_s[j, 0] = mx
        mu_s[j, 1] = my
    if gibbs:
        for j in range(k):
            if cnt[j] > 0:
                logw[j] = math.log(max(logw[j] / total, 1e-300))
    return mu_c, mu_s, icov, logdet, logw


# ---------------------------------------------------------------------- E-step


@_kernel
def _score(feat, y, x, j, mu_c, inv_var, mu_s, icov, logdet, logw, diff):
    c = feat.shape[2]
    dc = 0.0
    for ch in range(c):
        t = feat[y, x, ch] - mu_c[j, ch]
        dc += t * t * inv_var[ch]
    dx = x - mu_s[j, 0]
    dy = y - mu_s[j, 1]
    q = icov[j, 0] * dx * dx + 2.0 * icov[j, 1] * dx * dy + icov[j, 2] * dy * dy
    return -0.5 * (dc + q + logdet[j]) + logw[j] - diff


@_kernel
def _estep(feat, labels, mu_c, inv_var, mu_s, icov, logdet, logw, beta, simple, gibbs) -> int:
    h, w, _ = feat.shape
    moved = 0
    cand = np.empty(5, dtype=np.int64)
    scores = np.empty(5)
    # edge[y, x] = 0 only where no 4-neighbour has another label: most pixels, which the scan skips. A
    # pixel is visited once per call, after some of its neighbours at most, and a pixel that moves marks its
    # 4-neighbours, so the skipped pixels are exactly those the full test would skip.
    edge = np.zeros((h, w), dtype=np.uint8)
    for y in range(h):
        for x in range(w):
            cur = labels[y, x]
            if x + 1 < w and labels[y, x + 1] != cur:
                edge[y, x] = 1
                edge[y, x + 1] = 1
            if y + 1 < h and labels[y + 1, x] != cur:
                edge[y, x] = 1
                edge[y + 1, x] = 1
    for phase in range(4):
        py = phase // 2
        px = phase % 2
        for y in range(py, h, 2):
            for x in range(px, w, 2):
                if edge[y, x] == 0:
                    continue
                cur = labels[y, x]
                # distinct 4-neighbour labels other than the current one
                nc = 0
                for d in range(4):
                    qy = y + (d == 1) - (d == 0)
                    qx = x + (d == 3) - (d == 2)
                    if qy < 0 or qy >= h or qx < 0 or qx >= w:
                        continue
                    lab = labels[qy, qx]
                    if lab == cur:
                        continue
                    dup = False
                    for i in range(nc):
                        if cand[i] == lab:
                            dup = True
                    if not dup:
                        cand[nc] = lab
                        nc += 1
                if nc == 0:
                    continue
                mask = 0
                for i in range(8):
                    qy = y + _RING_DY[i]
                    qx = x + _RING_DX[i]
                    if 0 <= qy < h and 0 <= qx < w and labels[qy, qx] == cur:
                        mask |= 1 << i
                if not simple[mask]:
                    continue
                cand[nc] = cur
                nc += 1
                best = -1e300
                bi = nc - 1
                for i in range(nc):
                    lab = cand[i]
                    ndiff = 0
                    for r in range(8):
                        qy = y + _RING_DY[r]
                        qx = x + _RING_DX[r]
                        if 0 <= qy < h and 0 <= qx < w and labels[qy, qx] != lab:
                            ndiff += 1
                    s = _score(feat, y, x, lab, mu_c, inv_var, mu_s, icov, logdet, logw,
                               beta * ndiff)
                    scores[i] = s
                    if s > best:
                        best = s
                        bi = i
                if gibbs:
                    tot = 0.0
                    for i in range(nc):
                        scores[i] = math.exp(scores[i] - best)
                        tot += scores[i]
                    u = np.random.random() * tot
                    bi = nc - 1
                    acc = 0.0
                    for i in range(nc):
                        acc += scores[i]
                        if u < acc:
                            bi = i
                            break
                elif scores[bi] <= scores[nc - 1]:
                    bi = nc - 1  # ties keep the current label
                if cand[bi] != cur:
                    labels[y, x] = cand[bi]
                    moved += 1
                    if x > 0:
                        edge[y, x - 1] = 1
                    if x + 1 < w:
                        edge[y, x + 1] = 1
                    if y > 0:
                        edge[y - 1, x] = 1
                    if y + 1 < h:
                        edge[y + 1, x] = 1
    return moved


# --------------------------------------------------------------- split / merge


@_kernel
def _log_marginal(n, s, ss, a0, b0):
    """Log marginal likelihood of ``n`` values (sum ``s``, sum of squares ``ss``), NIG prior."""
    if n <= 0:
        return 0.0
    an = a0 + 0.5 * n
    bn = b0 + 0.5 * max(ss - s * s / n, 0.0)
    return (a0 * math.log(b0) - an * math.log(bn) + math.lgamma(an) - math.lgamma(a0)
            - 0.5 * math.log(n) - 0.5 * n * math.log(2.0 * math.pi))


@_kernel
def _ml_all(n, s, ss, a0, b0v):
    tot = 0.0
    for ch in range(s.shape[0]):
        tot += _log_marginal(n, s[ch], ss[ch], a0, b0v[ch])
    return tot


@_kernel
def _accept(log_h, gibbs) -> bool:
    if gibbs:
        return log_h >= 0.0 or np.random.random() < math.exp(log_h)
    return log_h > 0.0


@_kernel
def _pixel_lists(labels, k):
    h, w = labels.shape
    start = np.zeros(k + 1, dtype=np.int64)
    for y in range(h):
        for x in range(w):
            start[labels[y, x] + 1] += 1
    for j in range(k):
        start[j + 1] += start[j]
    fill = start[:-1].copy()
    order = np.empty(h * w, dtype=np.int64)
    for y in range(h):
        for x in range(w):
            j = labels[y, x]
            order[fill[j]] = y * w + x
            fill[j] += 1
    return start, order


@_kernel
def _split(feat, labels, k, prior_count, max_k, a0, b0v, log_alpha, boost, min_size, gibbs):
    """Propose one split per superpixel; return the new number of labels.

    ``boost`` (H×W) adds its mean over the superpixel to ``log_alpha`` (guidance).
    """
    h, w, c = feat.shape
    start, order = _pixel_lists(labels, k)
    buf = feat.reshape(h * w, c)[order]  # features in superpixel order: sequential access
    flat_boost = boost.ravel()
    side = np.zeros(h * w, dtype=np.int8)  # 0 outside; -1/-2 tentative; 1/2 final halves
    stack = np.empty(h * w, dtype=np.int64)
    m1 = np.empty(c)
    m2 = np.empty(c)
    mean = np.empty(c)
    s1 = np.empty(c)
    ss1 = np.empty(c)
    s2 = np.empty(c)
    ss2 = np.empty(c)
    n_new = k
    for j in range(k):
        if n_new >= max_k:
            break
        lo = start[j]
        hi = start[j + 1]
        n = hi - lo
        if n < 2 * min_size:
            continue
        mean[:] = 0.0
        for t in range(lo, hi):
            p = order[t]
            for ch in range(c):
                mean[ch] += buf[t, ch]
        mean /= n
        # seeds for 2-means: farthest point from the mean, then farthest from it
        fa = lo
        best = -1.0
        for t in range(lo, hi):
            p = order[t]
            d = 0.0
            for ch in range(c):
                d += (buf[t, ch] - mean[ch]) ** 2
            if d > best:
                best = d
                fa = t
        if best <= 1e-14:
            continue
        for ch in range(c):
            m1[ch] = buf[fa, ch]
        best = -1.0
        fb = lo
        for t in range(lo, hi):
            p = order[t]
            d = 0.0
            for ch in range(c):
                d += (buf[t, ch] - m1[ch]) ** 2
            if d > best:
                best = d
                fb = t
        for ch in range(c):
            m2[ch] = buf[fb, ch]
        for _ in range(3):
            s1[:] = 0.0
            s2[:] = 0.0
            n1 = 0
            n2 = 0
            for t in range(lo, hi):
                p = order[t]
                d1 = 0.0
                d2 = 0.0
                for ch in range(c):
                    v = buf[t, ch]
                    d1 += (v - m1[ch]) ** 2
                    d2 += (v - m2[ch]) ** 2
                if d1 <= d2:
                    n1 += 1
                    for ch in range(c):
                        s1[ch] += buf[t, ch]
                else:
                    n2 += 1
                    for ch in range(c):
                        s2[ch] += buf[t, ch]
            if n1 == 0 or n2 == 0:
                break
            for ch in range(c):
                m1[ch] = s1[ch] / n1
                m2[ch] = s2[ch] / n2
        # seeds: the member closest to each mean
        bd1 = 1e300
        bd2 = 1e300
        sd1 = -1
        sd2 = -1
        for t in range(lo, hi):
            p = order[t]
            d1 = 0.0
            d2 = 0.0
            for ch in range(c):
                v = buf[t, ch]
                d1 += (v - m1[ch]) ** 2
                d2 += (v - m2[ch]) ** 2
            if d1 < bd1:
                bd1 = d1
                sd1 = p
            if d2 < bd2 or (d2 == bd2 and sd2 == sd1):
                bd2 = d2
                sd2 = p
        if sd1 == sd2:
            for t in range(lo, hi):
                side[order[t]] = 0
            continue
        # Both halves must be 4-connected: half 1 is the connected part of the
        # nearer-to-mean-1 pixels around seed 1; half 2 is the connected part of the
        # rest around seed 2; pockets left over touch half 1 and join it.
        for t in range(lo, hi):
            p = order[t]
            d1 = 0.0
            d2 = 0.0
            for ch in range(c):
                v = buf[t, ch]
                d1 += (v - m1[ch]) ** 2
                d2 += (v - m2[ch]) ** 2
            side[p] = -1 if d1 <= d2 else -2
        _flood(side, stack, sd1, -1, 1, h, w)
        if side[sd2] == 1:
            for t in range(lo, hi):
                side[order[t]] = 0
            continue
        for t in range(lo, hi):
            p = order[t]
            if side[p] == -1:
                side[p] = -2
        _flood(side, stack, sd2, -2, 2, h, w)
        s1[:] = 0.0
        ss1[:] = 0.0
        s2[:] = 0.0
        ss2[:] = 0.0
        n1 = 0
        n2 = 0
        for t in range(lo, hi):
            p = order[t]
            if side[p] == 2:
                n2 += 1
                for ch in range(c):
                    v = buf[t, ch]
                    s2[ch] += v
                    ss2[ch] += v * v
            else:
                n1 += 1
                for ch in range(c):
                    v = buf[t, ch]
                    s1[ch] += v
                    ss1[ch] += v * v
        ok = n1 >= min_size and n2 >= min_size
        if ok:
            log_h = (_ml_all(n1, s1, ss1, a0, b0v) + _ml_all(n2, s2, ss2, a0, b0v)
                     - _ml_all(n, s1 + s2, ss1 + ss2, a0, b0v) + log_alpha)
            bsum = 0.0
            for t in range(lo, hi):
                bsum += flat_boost[order[t]]
            log_h += bsum / n
            ok = _accept(log_h, gibbs)
        for t in range(lo, hi):
            p = order[t]
            if ok and side[p] == 2:
                labels[p // w, p % w] = n_new
            side[p] = 0
        if ok:
            half = 0.5 * prior_count[j]
            prior_count[j] = half
            prior_count[n_new] = half
            n_new += 1
    return n_new


@_kernel
def _flood(side, stack, seed, old, new, h, w):
    """Set the 4-connected region of ``side == old`` around ``seed`` to ``new``."""
    side[seed] = new
    stack[0] = seed
    top = 1
    while top > 0:
        top -= 1
        p = stack[top]
        py = p // w
        px = p % w
        for d in range(4):
            qy = py + (d == 1) - (d == 0)
            qx = px + (d == 3) - (d == 2)
            if qy < 0 or qy >= h or qx < 0 or qx >= w:
                continue
            q = qy * w + qx
            if side[q] == old:
                side[q] = new
                stack[top] = q
                top += 1


@_kernel
def _merge(feat, labels, k, prior_count, a0, b0v, log_alpha, boost, gibbs):
    """Propose merging each superpixel with its most similar neighbour (each at most once)."""
    h, w, c = feat.shape
    cnt, _, _, s_c, ss_c = _stats(feat, labels, k)
    bsum = np.zeros(k)
    for y in range(h):
        for x in range(w):
            bsum[labels[y, x]] += boost[y, x]
    mean = np.zeros((k, c))
    for j in range(k):
        if cnt[j] > 0:
            for ch in range(c):
                mean[j, ch] = s_c[j, ch] / cnt[j]
    partner = -np.ones(k, dtype=np.int64)
    pdist = np.full(k, 1e300)
    for y in range(h):
        for x in range(w):
            a = labels[y, x]
            for d in range(2):
                qy = y + d
                qx = x + 1 - d
                if qy >= h or qx >= w:
                    continue
                b = labels[qy, qx]
                if a == b:
                    continue
                dd = 0.0
                for ch in range(c):
                    dd += (mean[a, ch] - mean[b, ch]) ** 2
                if dd < pdist[a] or (dd == pdist[a] and b < partner[a]):
                    pdist[a] = dd
                    partner[a] = b
                if dd < pdist[b] or (dd == pdist[b] and a < partner[b]):
                    pdist[b] = dd
                    partner[b] = a
    order = np.argsort(pdist, kind="mergesort")
    used = np.zeros(k, dtype=np.bool_)
    target = np.arange(k)
    s = np.empty(c)
    ss = np.empty(c)
    for t in range(k):
        a = order[t]
        b = partner[a]
        if b < 0 or used[a] or used[b]:
            continue
        for ch in range(c):
            s[ch] = s_c[a, ch] + s_c[b, ch]
            ss[ch] = ss_c[a, ch] + ss_c[b, ch]
        log_h = (_ml_all(cnt[a] + cnt[b], s, ss, a0, b0v)
                 - _ml_all(cnt[a], s_c[a], ss_c[a], a0, b0v)
                 - _ml_all(cnt[b], s_c[b], ss_c[b], a0, b0v) - log_alpha
                 - (bsum[a] + bsum[b]) / (cnt[a] + cnt[b]))
        if _accept(log_h, gibbs):
            used[a] = True
            used[b] = True
            target[a] = b
            prior_count[b] += prior_count[a]
            prior_count[a] = 0.0
    for y in range(h):
        for x in range(w):
            labels[y, x] = target[labels[y, x]]


# ------------------------------------------------------------------ main loop


@_kernel
def _bass_loop(feat, labels, prior_count, inv_var, beta, alpha, a0, b0v, boost, iterations,
               sm_every, min_size, max_k, simple, gibbs, seed):
    if gibbs:
        np.random.seed(seed)
    h, w, c = feat.shape
    mapping, k = _compact(labels, labels.max() + 1)
    pc = np.zeros(max_k)
    for old in range(mapping.shape[0]):
        if mapping[old] >= 0:
            pc[mapping[old]] = prior_count[old]
    log_alpha = math.log(alpha)
    n_sm = 0
    for it in range(iterations):
        if sm_every > 0 and it > 0 and it % sm_every == 0 and it < iterations - 2:
            if n_sm % 2 == 0:
                k = _split(feat, labels, k, pc, max_k, a0, b0v, log_alpha, boost, min_size,
                           gibbs)
            else:
                _merge(feat, labels, k, pc, a0, b0v, log_alpha, boost, gibbs)
            mapping, k = _compact(labels, k)
            new_pc = np.zeros(max_k)
            for old in range(mapping.shape[0]):
                if mapping[old] >= 0:
                    new_pc[mapping[old]] = pc[old]
            pc = new_pc
            n_sm += 1
        cnt, s_sp, ss_sp, s_c, _ = _stats(feat, labels, k, False)
        mu_c, mu_s, icov, logdet, logw = _mstep(cnt, s_sp, ss_sp, s_c, pc[:k], 1.0 / inv_var, gibbs,
                                                  alpha)
        moved = _estep(feat, labels, mu_c, inv_var, mu_s, icov, logdet, logw, beta, simple,
                       gibbs)
        if moved == 0 and not gibbs and (sm_every <= 0 or it >= iterations - 2):
            break
    return labels


# ------------------------------------------------------------------- wrapper


#: Images of at most this many pixels are remembered by :func:`_lab` (by default the pipeline segments at most
#: 640 × 640): a thread keeps at most about 27 MB for it (11 MB at 640 × 427), until it ends or converts a
#: smaller image; a service's long-lived worker threads each keep theirs.
LAB_MEMO_PIXELS = 1 << 20


class _LastLab(threading.local):
    """The last image (of at most :data:`LAB_MEMO_PIXELS`) each thread converted, and its Lab: the pipeline's
    search merges by colour the very image BASS has just segmented, and need not convert it again. An image
    is recognised by its pixels (a comparison, far cheaper than the conversion)."""

    image: np.ndarray | None = None
    lab: np.ndarray | None = None


_LAST = _LastLab()


def _lab(image: np.ndarray) -> np.ndarray:
    """sRGB uint8 → CIE Lab (D65) divided by 100, as float64.

    The array may be the one handed out before for the same pixels (in this thread): callers read it and
    never write it (BASS reads its features; :func:`rgb_to_lab` scales a copy).
    """
    last = _LAST
    if last.lab is not None and last.image is not None and last.image.shape == image.shape \
            and np.array_equal(last.image, image):
        return last.lab
    lab = _rgb_to_lab(image, _SRGB_LINEAR)
    if image.shape[0] * image.shape[1] <= LAB_MEMO_PIXELS:
        last.image, last.lab = np.array(image, copy=True), lab
    return lab


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """sRGB uint8 ``(H, W, 3)`` → CIE L*a*b* (D65, 2°) as float64, on scikit-image's scale and with its constants.

    The same numbers as ``skimage.color.rgb2lab`` to within 1e-12 over all 16.7 million colours (tested), two to
    three times faster (``bench/lab_speed.py``): the sRGB curve is a 256-entry table and the rest one numba loop
    (the one BASS uses). The colour merge and the figure search convert whole images with it.

    Examples
    --------
    >>> import numpy as np
    >>> rgb_to_lab(np.array([[[255, 255, 255], [0, 0, 0], [200, 30, 30]]], np.uint8)).round(2).tolist()
    [[[100.0, -0.0, 0.0], [0.0, 0.0, 0.0], [43.22, 63.04, 45.22]]]
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidParameterError(f"image must be an (H, W, 3) uint8 array, got {image.dtype} {image.shape}")
    return _lab(np.ascontiguousarray(image)) * 100.0


_SRGB_LINEAR = np.where(
    np.arange(256) / 255.0 <= 0.04045,
    np.arange(256) / 255.0 / 12.92,
    ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4,
)


@_kernel
def _rgb_to_lab(image, lut):
    h, w, _ = image.shape
    out = np.empty((h, w, 3))
    for y in range(h):
        for x in range(w):
            r = lut[image[y, x, 0]]
            g = lut[image[y, x, 1]]
            b = lut[image[y, x, 2]]
            fx = (0.412453 * r + 0.357580 * g + 0.180423 * b) / 0.95047
            fy = 0.212671 * r + 0.715160 * g + 0.072169 * b
            fz = (0.019334 * r + 0.119193 * g + 0.950227 * b) / 1.08883
            fx = fx ** (1.0 / 3.0) if fx > 0.008856 else 7.787 * fx + 16.0 / 116.0
            fy = fy ** (1.0 / 3.0) if fy > 0.008856 else 7.787 * fy + 16.0 / 116.0
            fz = fz ** (1.0 / 3.0) if fz > 0.008856 else 7.787 * fz + 16.0 / 116.0
            out[y, x, 0] = (116.0 * fy - 16.0) / 100.0
            out[y, x, 1] = 5.0 * (fx - fy)
            out[y, x, 2] = 2.0 * (fy - fz)
    return out


def _check(name: str, value: Any, *, integer: bool = False, minimum: float = 0.0,
           strict: bool = True) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok and integer and not float(value).is_integer():
        ok = False
    if ok:
        ok = value > minimum if strict else value >= minimum
        ok = ok and math.isfinite(float(value))
    if not ok:
        kind = "an integer" if integer else "a number"
        rel = ">" if strict else ">="
        raise InvalidParameterError(f"{name} must be {kind} {rel} {minimum:g}, got {value!r}")


def _guided_init(
    h: int, w: int, area: float, attr: np.ndarray, gain: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Finer initial grid, smaller prior sizes and a larger split/merge ``alpha`` where
    attribution is high (cell area ``area / (1 + gain * a)``, ``alpha * (1 + gain * a)**2``).
    """
    from scipy.ndimage import uniform_filter

    side = max(1, int(round(math.sqrt(area))))
    local = uniform_filter(attr, size=side, mode="nearest")
    factor = 1.0 + gain * local
    # a few nested grid levels: level j has cells of area / 2**j
    n_levels = max(1, int(math.floor(math.log2(1.0 + gain))) + 1)
    level = np.clip(np.floor(np.log2(factor)), 0, n_levels - 1).astype(np.int64)
    labels = np.zeros((h, w), dtype=np.int64)
    offset = 0
    for j in range(n_levels):
        grid = _hex_grid(h, w, max(area / 2.0**j, 1.0)).astype(np.int64)
        labels = np.where(level == j, grid + offset, labels)
        offset += int(grid.max()) + 1
    labels = _connected(labels.astype(np.int32), max(1, int(area / 2.0 ** (n_levels - 1) / 4)))
    k0 = int(labels.max()) + 1
    cnt = np.bincount(labels.ravel(), minlength=k0).astype(np.float64)
    mean_attr = np.bincount(labels.ravel(), weights=attr.ravel(), minlength=k0) / cnt
    prior = area / (1.0 + gain * mean_attr)
    boost = 2.0 * np.log1p(gain * attr)
    return labels, prior, boost


def _seed(rng: Any) -> int:
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 2**31 - 1))
    return int(np.random.default_rng(rng).integers(0, 2**31 - 1))


# BASS over-segments on purpose (100 initial superpixels) and relies on the colour merge to
# reassemble thin objects: merged at Lab distance 12 unless the user says otherwise (tuned with
# bench/cse.py on synthetic seeds 7 and 11, reported on seed 2024). The paper's coarse SLIC /
# watershed settings (25 segments) would only grow, so they register no merge.
@register_segmenter("bass", default_merge=12.0, summary="BASS superpixels (default)")
def bass(
    image: np.ndarray,
    *,
    attribution: np.ndarray | None = None,
    rng: Any = None,
    n_segments: int | None = None,
    sp_size: float | None = None,
    alpha: float = 1.0,
    beta: float = 0.5,
    color_std: float = 0.003,
    iterations: int = 25,
    split_merge_every: int = 4,
    inference: str = "em",
    guided: bool = False,
    guide_weight: float = 0.3,
    guide_gain: float = 3.0,
    prior_strength: float = 100.0,
    min_size: int | None = None,
) -> np.ndarray:
    """Bayesian Adaptive Superpixel Segmentation (hard EM by default).

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray
        The image; it is not modified.
    attribution : (H, W) float32 ndarray in [0, 1], optional
        Used only when ``guided`` is True (the ``bass_guided`` entry).
    rng : numpy Generator, int or None
        Seeds Gibbs sampling; hard EM is deterministic and ignores it.
    n_segments : int, optional
        Initial number of superpixels (default 100 when ``sp_size`` is not given
        either). Split and merge moves then adapt the count to the image.
    sp_size : float, optional
        Initial superpixel side in pixels (cells of ``sp_size**2`` pixels); overrides
        ``n_segments``.
    alpha : float
        Concentration: larger values favour splits and resist merges.
    beta : float
        Potts weight: penalty per 8-neighbour with another label.
    color_std : float
        Diagonal of the fixed colour covariance in Lab/100 units; like the
        reference's ``i_std`` it enters as a variance (0.018 ≈ 13 Lab units std).
    iterations : int
        EM (or Gibbs) iterations.
    split_merge_every : int
        Alternate a split and a merge step every this many iterations (0: never).
    inference : {"em", "gibbs"}
        Hard EM (deterministic) or Gibbs sampling.
    guided : bool
        Use ``attribution`` inside the model: as an extra feature channel (weight
        ``guide_weight``, so superpixels do not straddle sharp attribution edges)
        and for granularity: where attribution ``a`` is high the initial cells are
        smaller (area divided by up to ``1 + guide_gain * a``), so are the prior
        superpixel sizes, and the split/merge concentration is ``alpha * (1 +
        guide_gain * a)**2`` (more splits, fewer merges).
    guide_weight, guide_gain : float
        Strengths of the two uses of attribution above.
    prior_strength : float
        Pseudo-count of the inverse-gamma prior on colour variances used by split
        and merge (prior variance ``color_std``); larger is closer to a fixed variance.
    min_size : int, optional
        Smallest superpixel (pixels) a split may create; smaller fragments are merged
        into a neighbour. Default: a 16th of the initial superpixel area, at least 2.

    Returns
    -------
    (H, W) int32 ndarray
        Labels 0..n-1; every label is one 4-connected region.

    Examples
    --------
    >>> import numpy as np
    >>> from veil.segment import segment
    >>> img = np.zeros((40, 40, 3), np.uint8); img[:, 20:] = 255
    >>> labels = segment(img, "bass", n_segments=4)
    >>> labels.dtype, labels.shape
    (dtype('int32'), (40, 40))
    >>> set(labels[:, :20].ravel()).isdisjoint(labels[:, 20:].ravel())  # no region crosses
    True
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise InvalidParameterError(
            f"image (shape {img.shape}, dtype {img.dtype}) must be an H×W×3 uint8 array; "
            "pass it through veil.segment.segment or veil.image.as_rgb_uint8"
        )
    h, w = img.shape[:2]
    if inference not in _INFERENCE:
        raise InvalidParameterError(
            f"inference must be one of {', '.join(_INFERENCE)}, got {inference!r}"
        )
    for name, val in (("alpha", alpha), ("color_std", color_std),
                      ("prior_strength", prior_strength)):
        _check(name, val)
    _check("beta", beta, strict=False)
    _check("iterations", iterations, integer=True, minimum=0, strict=False)
    _check("split_merge_every", split_merge_every, integer=True, minimum=0, strict=False)
    if sp_size is not None:
        _check("sp_size", sp_size)
        area = float(sp_size) ** 2
    else:
        if n_segments is None:
            n_segments = 100
        _check("n_segments", n_segments, integer=True)
        area = h * w / float(n_segments)
    area = max(area, 1.0)
    if min_size is None:
        min_size = max(2, int(area / 16))
    _check("min_size", min_size, integer=True)

    feat = _lab(img)
    if guided:
        _check("guide_weight", guide_weight, strict=False)
        _check("guide_gain", guide_gain, strict=False)
        if attribution is None:
            raise InvalidParameterError(
                "bass_guided needs an attribution map (H×W float32 in [0, 1]); got None"
            )
        attr = np.asarray(attribution, dtype=np.float64)
        if attr.shape != (h, w):
            raise InvalidParameterError(
                f"attribution (shape {attr.shape}) must have the image's shape {(h, w)}"
            )
        if not np.all(np.isfinite(attr)):
            raise InvalidParameterError("attribution contains NaN or infinite values")
        attr = np.clip(attr, 0.0, 1.0)
        feat = np.concatenate([feat, float(guide_weight) * attr[:, :, None]], axis=2)
    feat = np.ascontiguousarray(feat, dtype=np.float64)

    if guided:
        labels, prior, boost = _guided_init(h, w, area, attr, float(guide_gain))
    else:
        labels = _connected(_hex_grid(h, w, area), 1)
        prior = np.full(int(labels.max()) + 1, area, dtype=np.float64)
        boost = np.zeros((h, w))
    k0 = int(labels.max()) + 1
    c = feat.shape[2]
    inv_var = np.full(c, 1.0 / float(color_std))
    a0 = float(prior_strength)
    b0v = np.full(c, float(color_std) * a0)
    max_k = int(min(h * w, 8 * k0 + 64))
    out = _bass_loop(feat, labels, prior, inv_var, float(beta), float(alpha), a0, b0v, boost,
                     int(iterations), int(split_merge_every), int(min_size), max_k, _SIMPLE,
                     inference == "gibbs", _seed(rng) if inference == "gibbs" else 0)
    return _connected(out, int(min_size) if h * w >= 4 * min_size else 1)


@register_segmenter("bass_guided", default_merge=12.0, summary="BASS guided by the attribution map")
def bass_guided(
    image: np.ndarray,
    *,
    attribution: np.ndarray | None = None,
    rng: Any = None,
    **options: Any,
) -> np.ndarray:
    """BASS guided by an attribution map: finer regions that follow the evidence.

    Same options as :func:`bass`; ``attribution`` is required. Attribution joins the
    colour features (``guide_weight``) and makes superpixels finer where it is high
    (``guide_gain``): a denser initial grid, smaller prior sizes and a larger
    split/merge concentration there.
    """
    options.pop("guided", None)
    return bass(image, attribution=attribution, rng=rng, guided=True, **options)
