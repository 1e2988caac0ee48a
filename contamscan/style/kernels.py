"""Compiled kernels of the style estimate: window layout, occurrence counts, per-document
log-likelihoods, the mixture EM, and the word-hash lookup table."""

from __future__ import annotations

import numpy as np

from ..native import jit, kernel

NO_DATA = -1e30  # log-likelihood of a component with no documents at a window length
# a shard's occurrence counts add 1/W per window of a W-window document: kept as integer
# multiples of 1/OBS_SCALE (the lcm of 1..16), so that sums are exact whatever the batches
OBS_SCALE = 720720


@jit
def _layout(n, lengths, max_windows):
    """(window length index, number of windows) for a document of ``n`` words; (-1, 0) when
    it is shorter than every window."""
    b = -1
    for i in range(lengths.shape[0]):
        if lengths[i] <= n:
            b = i
    if b < 0:
        return -1, 0
    L = lengths[b]
    return b, min(max_windows, (n + L - 1) // L)


@jit(inline="always")
def _window_start(n, L, W, j):
    """Windows spread evenly from the first word to the last (they overlap when W*L > n)."""
    if W == 1:
        return 0
    return (j * (n - L) + (W - 1) // 2) // (W - 1)


@kernel(
    "int64(int32[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64, int64, float64[:, :, ::1], "
    "float64[:, ::1], int64[::1], int64)"
)
def count_kernel(ids, offsets, docs, comp, lengths, max_windows, max_words, df, nd, stamp, tick):
    """For each document ``docs[i]`` of component ``comp[i]``: nd[b, c] += 1 and, for every
    vocabulary word in each of its W windows, df[b, c, v] += 1 / W."""
    for i in range(docs.shape[0]):
        d = docs[i]
        lo = offsets[d]
        n = min(offsets[d + 1] - lo, max_words)
        b, W = _layout(n, lengths, max_windows)
        if b < 0:
            continue
        L = lengths[b]
        c = comp[i]
        nd[b, c] += 1.0
        w = 1.0 / W
        for j in range(W):
            s = lo + _window_start(n, L, W, j)
            tick += 1
            for k in range(s, s + L):
                v = ids[k]
                if v >= 0 and stamp[v] != tick:
                    stamp[v] = tick
                    df[b, c, v] += w
    return tick


@kernel(
    "int64(int32[::1], int64[::1], int64[::1], int64, int64, float64[:, :, ::1], float64[:, ::1], float64"
    "[:, :], int64[::1], float64[:, ::1], float64[::1], int64[::1], int64)"
)
def loglik_kernel(ids, offsets, lengths, max_windows, max_words, logit, const, out, bucket, obs, nd, stamp, tick):
    """out[d, g]: the mean over document d's windows of their log-likelihood under component
    g; bucket[d]: its window length index (-1: too short). obs[b, v] += OBS_SCALE / W for each
    window holding word v, nd[b] += 1 (the shard's own occurrence counts, for its fingerprint).
    ``logit`` is [windows, vocab, components]: a word's logits for all components are adjacent."""
    G = logit.shape[2]
    for d in range(offsets.shape[0] - 1):
        lo = offsets[d]
        n = min(offsets[d + 1] - lo, max_words)
        b, W = _layout(n, lengths, max_windows)
        bucket[d] = b
        for g in range(G):
            out[d, g] = 0.0
        if b < 0:
            continue
        L = lengths[b]
        nd[b] += 1.0
        w = 1.0 / W
        acc = np.zeros(G)
        for j in range(W):
            s = lo + _window_start(n, L, W, j)
            tick += 1
            for k in range(s, s + L):
                v = ids[k]
                if v >= 0 and stamp[v] != tick:
                    stamp[v] = tick
                    obs[b, v] += OBS_SCALE // W
                    for g in range(G):
                        acc[g] += logit[b, v, g]
        for g in range(G):
            out[d, g] = const[b, g] + acc[g] * w
    return tick


@jit(inline="always")
def _density(f, i, pi):
    """Document ``i``'s likelihood under the mixture: sum_k pi_k f_ik."""
    den = 0.0
    for k in range(f.shape[1]):
        den += pi[k] * f[i, k]
    return den


@jit
def _em_step(f, w, pi, out, total):
    """One EM update of the mixture weights: out_k = pi_k * mean_i(w_i f_ik / sum_j pi_j f_ij)."""
    n, G = f.shape
    for k in range(G):
        out[k] = 0.0
    for i in range(n):
        if w[i] == 0:
            continue
        den = _density(f, i, pi)
        if den <= 0.0:
            continue
        s = w[i] / den
        for k in range(G):
            out[k] += s * f[i, k]
    for k in range(G):
        out[k] *= pi[k] / total


@kernel("int64(float64[:, :], float64[::1], float64[::1], float64, int64)")
def em(f, w, pi, tol, max_iter):
    """Mixture weights by EM: maximise sum_i w_i log(sum_k pi_k f_ik) over the simplex, from
    ``pi`` (updated in place), accelerated by SQUAREM (Varadhan & Roland 2008: an extrapolation
    from two EM steps, kept only when it stays on the simplex; then one EM step). Same fixed
    point as plain EM, several times fewer passes over the documents when components are
    alike. Stops when no weight moves by ``tol``; returns the number of EM steps."""
    n, G = f.shape
    total = 0.0
    for i in range(n):
        total += w[i]
    if total <= 0.0:
        return 0
    p1, p2, q = np.empty(G), np.empty(G), np.empty(G)
    steps = 0
    while steps < max_iter:
        _em_step(f, w, pi, p1, total)
        _em_step(f, w, p1, p2, total)
        steps += 2
        rr = vv = 0.0
        for k in range(G):
            r = p1[k] - pi[k]
            v = p2[k] - 2.0 * p1[k] + pi[k]
            rr += r * r
            vv += v * v
        if rr == 0.0 or vv == 0.0:
            a = -1.0
        else:
            a = min(-1.0, -np.sqrt(rr / vv))
        ok = True
        s = 0.0
        for k in range(G):
            r = p1[k] - pi[k]
            v = p2[k] - 2.0 * p1[k] + pi[k]
            q[k] = pi[k] - 2.0 * a * r + a * a * v
            if q[k] < 0.0:
                ok = False
            s += q[k]
        if not ok or s <= 0.0:
            for k in range(G):
                q[k] = p2[k]  # a = -1: plain EM
        else:
            for k in range(G):
                q[k] /= s
        _em_step(f, w, q, p1, total)  # stabilise: one EM step from the extrapolation
        steps += 1
        delta = 0.0
        for k in range(G):
            delta = max(delta, abs(p1[k] - pi[k]))
            pi[k] = p1[k]
        if delta < tol:
            break
    return steps


@kernel("void(float64[:, :], float64[::1], float64[::1], float64, int64, float64, int64)")
def em_boundary(f, w, pi, tol, max_iter, floor, rounds):
    """EM, then the boundary: multiplicative EM updates only approach a zero weight, so a
    component whose weight stays below ``floor`` is set to zero and the rest refitted; it comes
    back when the optimality (KKT) condition says it should, i.e. when
    sum_i w_i f_ik / sum_j pi_j f_ij > sum_i w_i. The maximum likelihood then has exact zeros,
    so a shard without AI text gets alpha = 0 (and intervals that can reach 0)."""
    n, G = f.shape
    em(f, w, pi, tol, max_iter)
    total = 0.0
    for i in range(n):
        total += w[i]
    for _ in range(rounds):
        s = 0.0
        for k in range(G):
            if pi[k] < floor:
                pi[k] = 0.0
            s += pi[k]
        for k in range(G):
            pi[k] /= s
        em(f, w, pi, tol, max_iter)
        grad = np.zeros(G)
        for i in range(n):
            if w[i] == 0:
                continue
            den = _density(f, i, pi)
            if den <= 0.0:
                continue
            for k in range(G):
                grad[k] += w[i] * f[i, k] / den
        worst, best = -1, 1.0 + 1e-6
        for k in range(G):
            if pi[k] == 0.0 and grad[k] / total > best:
                worst, best = k, grad[k] / total
        if worst < 0:
            return
        pi[worst] = floor  # it belongs in the mixture: let EM size it
        s = 0.0
        for k in range(G):
            s += pi[k]
        for k in range(G):
            pi[k] /= s
        em(f, w, pi, tol, max_iter)


@jit
def _slot(h, mask):
    return (np.uint64(h) * np.uint64(0x9E3779B97F4A7C15) >> np.uint64(32)) & mask


@kernel("void(uint32[::1], uint32[::1], int32[::1], boolean[::1])")
def _fill(hashes, keys, ids, used):
    mask = np.uint64(keys.shape[0] - 1)
    for i in range(hashes.shape[0]):
        j = _slot(hashes[i], mask)
        while used[j] and keys[j] != hashes[i]:
            j = (j + np.uint64(1)) & mask
        if not used[j]:  # a repeated hash keeps its first id
            used[j] = True
            keys[j] = hashes[i]
            ids[j] = i


@kernel("void(uint32[::1], uint32[::1], int32[::1], int32[::1])")
def lookup(hashes, keys, ids, out):
    """out[i] = the id of hashes[i] in the open-addressing table (keys, ids), -1 if absent."""
    mask = np.uint64(keys.shape[0] - 1)
    for i in range(hashes.shape[0]):
        h = hashes[i]
        j = _slot(h, mask)
        while True:
            v = ids[j]
            if v < 0:
                out[i] = -1
                break
            if keys[j] == h:
                out[i] = v
                break
            j = (j + np.uint64(1)) & mask


def hash_table(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An open-addressing table (load <= 1/4) from word hash to vocabulary id."""
    size = 1 << max(4, int(4 * max(len(hashes), 1) - 1).bit_length())
    keys, ids = np.zeros(size, np.uint32), np.full(size, -1, np.int32)
    _fill(np.asarray(hashes, np.uint32), keys, ids, np.zeros(size, np.bool_))
    return keys, ids
