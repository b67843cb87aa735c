"""The compiled engine's event loop: the callback engine's events, replayed in Numba.

:func:`run` is a line-by-line port of :mod:`recsys.sim.server` and the wiring in
:mod:`recsys.sim.engine`. It keeps SimPy's event order exactly: a binary heap of
``(time, event id)`` where each event's time is computed as ``now + delay``, as
``simpy.Timeout`` does, so ties and rounding resolve as in the SimPy engine and the
per-request records come out identical. Events: the next distinct arrival time (``SOURCE``),
a batch finishing (``DONE``), a batch timer (``TIMER``, value = its due time) and a batch
reaching the next stage after its network delay (``HOP``; constant delays keep hops FIFO, so
a ring of batches in transit per stage suffices).

The loop is resumable: every piece of state lives in arrays owned by the caller
(:mod:`recsys.sim.fast`), and :func:`run` returns, between two events, when a service-time
buffer runs low (``REFILL``: the caller draws the next chunks from the same
:class:`~recsys.sim.service.BatchSampler` streams as the SimPy engine), when a ring or the heap
could overflow on the next event (``GROW``) or after ``budget`` events (``BUDGET``, for the
progress bar). Memory is therefore bounded by what is in flight, plus the per-request record
arrays only when ``record`` is on; with ``stream`` on it fills the accumulators of
:mod:`recsys.sim.stream` as requests finish.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import numpy as np

from recsys.metrics_latency import HIST_MAX_EXP, HIST_MIN_EXP
from recsys.sim.records import OK, SHED, TIMEOUT
from recsys.sim.server import TIME_EPS_S
from recsys.sim.stream import (
    INV_BATCH_SUM,
    LAT_HI,
    LAT_LO,
    QMAX,
    REACHED,
    RN,
    RX,
    RX_MAX,
    RX_MIN,
    RXX,
    RXY,
    RY,
    SERVED,
    SERVICE_SUM,
    SHEDS,
    SUB,
    TIMEOUTS,
    TS_ARRIVALS,
    TS_SUB,
    WAIT_HI,
    WAIT_LO,
    WAIT_SUM,
)

try:
    import numba
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic  # type: ignore[misc]
    def _bitcast(typingctx: Any, x: Any) -> Any:
        """The IEEE-754 bits of a float64 as an int64 (an LLVM bitcast, no call)."""

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.bitcast(args[0], context.get_value_type(types.int64))

        return types.int64(types.float64), codegen

    _bits = cast(Callable[[float], int], _bitcast)

    def _jit(func: Callable[..., Any]) -> Callable[..., Any]:
        return numba.njit(cache=True, nogil=True)(func)  # type: ignore[no-any-return]

    def _inline(func: Callable[..., Any]) -> Callable[..., Any]:
        # Inlined into run(): a call passing the state tuples would cost a reference-count
        # update per array, more than the work itself.
        return numba.njit(inline="always", nogil=True)(func)  # type: ignore[no-any-return]

    COMPILED = True
except ImportError:  # pragma: no cover - the fast extra is not installed: plain Python

    def _jit(func: Callable[..., Any]) -> Callable[..., Any]:
        return func

    _inline = _jit
    COMPILED = False

    def _bits(x: float) -> int:  # type: ignore[misc]
        return int(struct.unpack("<q", struct.pack("<d", x))[0])


# Event kinds (low 4 bits of an event code; then 8 bits of stage, then the worker slot).
SOURCE, DONE, TIMER, HOP = 0, 1, 2, 3
# Why run() returned.
FINISHED, REFILL, GROW, BUDGET = 0, 1, 2, 3

# Global int state ``gi`` (the pending arrival event is kept out of the heap: SRC_EID, SRC_T).
EID, HEAP_N, SRC, NEED_REFILL, SRC_EID, N_GI = range(6)
# Global float state ``gf``.
NOW, SRC_T, N_GF = 0, 1, 2
# Per-stage int state ``si`` [n_stages, N_SI].
Q_HEAD, Q_LEN, BUSY, TIMER_SET, FREE_TOP, T_HEAD, T_LEN, TB_HEAD, TB_LEN, N_SI = range(10)
# Per-stage float state ``sf`` [n_stages, N_SF].
TIMER_AT, BUSY_WIN, N_SF = 0, 1, 2
# Per-stage int parameters ``pi`` [n_stages, N_PI].
WORKERS, MAX_BATCH, CAPACITY, HAS_TIMEOUT, N_PI = range(5)  # CAPACITY -1: unbounded
# Per-stage float parameters ``pf`` [n_stages, N_PF].
MAX_WAIT, TIMEOUT_S, NET_IN, N_PF = range(4)
# Global parameters ``gp`` (floats; counts are exact below 2**53).
WARMUP, T_END, BIN_S, M0, N_MEASURED, N_BATCHES, N_BINS, N_GP = range(8)

_ZERO_BELOW = 2.0 ** (HIST_MIN_EXP - 1)
SHIFT, TS_SHIFT = 52 - SUB.bit_length() + 1, 52 - TS_SUB.bit_length() + 1  # sub = 2**(52-shift)


class Params(NamedTuple):
    """Run constants."""

    arrival: np.ndarray  # arrival times, sorted (a request reaches stage 0 network_ms later)
    gp: np.ndarray
    pi: np.ndarray
    pf: np.ndarray


class State(NamedTuple):
    """Everything that changes during a run (the caller may grow the rings between calls)."""

    gi: np.ndarray
    gf: np.ndarray
    si: np.ndarray
    sf: np.ndarray
    h_t: np.ndarray  # event heap: time, event id, code, value
    h_e: np.ndarray
    h_c: np.ndarray
    h_v: np.ndarray
    q_id: np.ndarray  # [n_stages, ring] waiting request ids and their enqueue times
    q_enq: np.ndarray
    sl_id: np.ndarray  # [n_stages, workers, max batch] ids of the batch each worker serves
    sl_size: np.ndarray  # [n_stages, workers]
    sl_free: np.ndarray  # [n_stages, workers] stack of free worker slots
    tr_id: np.ndarray  # [n_stages, ring] ids in transit to the stage, and batch sizes
    tr_sz: np.ndarray
    d_buf: np.ndarray  # [n_stages, max batch, buffer] pre-drawn service times per batch size
    d_head: np.ndarray
    d_len: np.ndarray
    tmp: np.ndarray  # scratch ids (one source group)


class Record(NamedTuple):
    """Per-request records ([n_stages, n] and [n]); used when ``record`` is on."""

    enq: np.ndarray
    start: np.ndarray
    service: np.ndarray
    batch: np.ndarray
    qlen: np.ndarray
    outcome: np.ndarray
    drop_stage: np.ndarray
    done: np.ndarray


class Stream(NamedTuple):
    """The arrays of :class:`recsys.sim.stream.StreamStats`; used when ``stream`` is on."""

    e2e: np.ndarray
    e2e_ext: np.ndarray
    lat: np.ndarray
    wait: np.ndarray
    acc: np.ndarray
    ts_counts: np.ndarray
    ts_hist: np.ndarray
    ts_ext: np.ndarray
    ts_qmax: np.ndarray


@_inline
def bucket(x: float, sub: int, shift: int, size: int) -> int:
    """:func:`recsys.metrics_latency.hist_index` from the float's bits (``sub = 2**(52 -
    shift)``): the biased exponent gives ``frexp``'s ``e``, the top mantissa bits the
    sub-bucket."""
    if x < _ZERO_BELOW:
        return 0
    bits = _bits(x)
    e = ((bits >> 52) & 0x7FF) - 1022
    if e > HIST_MAX_EXP:
        return size - 1
    return 1 + (e - HIST_MIN_EXP) * sub + ((bits >> shift) & (sub - 1))


@_jit
def max_group(arrival: np.ndarray, net0: float) -> int:
    """Most requests reaching stage 0 at one instant (one source event delivers them)."""
    best, run_length = 1, 1
    for i in range(1, arrival.size):
        if arrival[i] + net0 == arrival[i - 1] + net0:
            run_length += 1
            best = max(best, run_length)
        else:
            run_length = 1
    return best


@_jit
def run(
    p: Params,
    st: State,
    rec: Record,
    acc: Stream,
    flags: tuple[bool, bool],
    group: int,
    budget: int,
) -> int:
    """Process events until done, or until the caller must act (see module docstring).

    One long function on purpose: every array is bound once here, because passing the state
    to helper functions costs a reference-count update per array and call, which is more
    than the work of an event. The sections mirror :class:`~recsys.sim.server.StageServer`:
    ``_expire``, ``arrive_many``, ``_dispatch`` / ``_arm``, ``_start``, ``_on_done``.
    """
    arrival, gp, pi, pf = p
    (gi, gf, si, sf, h_t, h_e, h_c, h_v, q_id, q_enq, sl_id, sl_size, sl_free) = (
        st.gi, st.gf, st.si, st.sf, st.h_t, st.h_e, st.h_c, st.h_v, st.q_id, st.q_enq,
        st.sl_id, st.sl_size, st.sl_free,
    )  # fmt: skip
    tr_id, tr_sz, d_buf, d_head, d_len, tmp = (
        st.tr_id,
        st.tr_sz,
        st.d_buf,
        st.d_head,
        st.d_len,
        st.tmp,
    )
    r_enq, r_start, r_svc, r_bsz, r_qlen, r_out, r_drop, r_done = rec
    e2e_h, e2e_ext, lat_h, wait_h, sums, ts_counts, ts_hist, ts_ext, ts_qmax = acc
    record, stream = flags
    n, n_stages = arrival.size, pi.shape[0]
    net0 = pf[0, NET_IN]  # source times are arrival + net0, as the SimPy engine adds them
    warmup, t_end, per_bin = gp[WARMUP], gp[T_END], 1.0 / gp[BIN_S]
    m0, last_bin = int(gp[M0]), int(gp[N_BINS]) - 1
    n_main, n_ts = lat_h.shape[1], ts_hist.shape[1]
    q_cap, t_cap = q_id.shape[1], tr_id.shape[1]
    q_mask, t_mask = q_cap - 1, t_cap - 1
    # Batch-means groups: numpy.array_split of the measured requests in arrival order.
    n_batches = int(gp[N_BATCHES])
    bq, br = int(gp[N_MEASURED]) // n_batches, int(gp[N_MEASURED]) % n_batches
    b_head = br * (bq + 1)
    # Events created while handling one event, pushed in creation order at its end.
    heap_need = 2
    for s in range(n_stages):
        heap_need += pi[s, WORKERS] + 2
    pend_t = np.empty(heap_need)
    pend_c = np.empty(heap_need, np.int64)
    pend_v = np.empty(heap_need)
    # Hot counters live in locals (array slots would be reloaded after every store).
    eid, hn, need = gi[EID], gi[HEAP_N], gi[NEED_REFILL]
    src_i, src_e, src_t = gi[SRC], gi[SRC_EID], gf[SRC_T]
    now = gf[NOW]
    # Room for one more group (stage 0) or batch (later stages) in every ring: checked here,
    # then wherever a ring fills.
    adds = np.empty(n_stages, np.int64)
    crowded = False
    for s in range(n_stages):
        adds[s] = group if s == 0 else pi[s - 1, MAX_BATCH]
        if si[s, Q_LEN] + adds[s] > q_cap or si[s, T_LEN] + adds[s] > t_cap:
            crowded = True
        if si[s, TB_LEN] + 1 > t_cap:
            crowded = True
    events = 0
    status = FINISHED
    while hn > 0 or src_e >= 0:
        if need:
            status = REFILL
            break
        if hn + heap_need > h_t.size:
            status = GROW
            break
        if crowded:
            status = GROW
            break
        if events >= budget:
            status = BUDGET
            break
        events += 1

        # -- pop the earliest (time, event id): the pending arrival or the heap's top ------
        if src_e >= 0 and (hn == 0 or src_t < h_t[0] or (src_t == h_t[0] and src_e < h_e[0])):
            now, code, value = src_t, SOURCE, 0.0
            src_e = -1
        else:
            now, code, value = h_t[0], h_c[0], h_v[0]
            hn -= 1
            if hn > 0:  # sift the last entry down from the root
                t, e, c, v = h_t[hn], h_e[hn], h_c[hn], h_v[hn]
                i = 0
                while True:
                    child = 2 * i + 1
                    if child >= hn:
                        break
                    right = child + 1
                    if right < hn and (
                        h_t[right] < h_t[child]
                        or (h_t[right] == h_t[child] and h_e[right] < h_e[child])
                    ):
                        child = right
                    if t < h_t[child] or (t == h_t[child] and e < h_e[child]):
                        break
                    h_t[i], h_e[i], h_c[i], h_v[i] = h_t[child], h_e[child], h_c[child], h_v[child]
                    i = child
                h_t[i], h_e[i], h_c[i], h_v[i] = t, e, c, v
        kind, stage = code & 15, (code >> 4) & 255
        n_pend = 0
        arrive_to, dispatch_also, count = -1, -1, 0
        next_source = -1.0

        # -- the event itself --------------------------------------------------------------
        if kind == SOURCE:  # _Source._fire: every request arriving at this instant
            i = src_i
            j = i + 1
            while j < n and arrival[j] + net0 == arrival[i] + net0:
                j += 1
            src_i = j
            for k in range(j - i):
                tmp[k] = i + k
                if stream:
                    ts_counts[TS_ARRIVALS, min(int(arrival[i + k] * per_bin), last_bin)] += 1
            arrive_to, count = 0, j - i
            if j < n:
                next_source = now + max((arrival[j] + net0) - now, 0.0)
        elif kind == DONE:  # StageServer._on_done, then on_exit
            s, slot = stage, code >> 12
            si[s, BUSY] -= 1
            size = sl_size[s, slot]
            if s == n_stages - 1:  # finish: the reply leaves the last stage
                for k in range(size):
                    rid = sl_id[s, slot, k]
                    if record:
                        r_out[rid] = OK
                        r_done[rid] = now
                    if stream:
                        e2e = now - arrival[rid]
                        b = min(int(arrival[rid] * per_bin), last_bin)
                        ts_counts[1 + OK, b] += 1
                        ts_hist[b, bucket(e2e, TS_SUB, TS_SHIFT, n_ts)] += 1
                        ts_ext[b, 0] = min(ts_ext[b, 0], e2e)
                        ts_ext[b, 1] = max(ts_ext[b, 1], e2e)
                        if rid >= m0:
                            x = rid - m0
                            g = x // (bq + 1) if x < b_head else br + (x - b_head) // max(bq, 1)
                            e2e_h[g, bucket(e2e, SUB, SHIFT, n_main)] += 1
                            e2e_ext[g, 0] += e2e
                            e2e_ext[g, 1] = min(e2e_ext[g, 1], e2e)
                            e2e_ext[g, 2] = max(e2e_ext[g, 2], e2e)
            elif pf[s + 1, NET_IN] == 0.0:
                for k in range(size):
                    tmp[k] = sl_id[s, slot, k]
                arrive_to, count = s + 1, size
            else:  # into the next stage's transit ring; a HOP event delivers it
                nxt = s + 1
                tail = si[nxt, T_HEAD] + si[nxt, T_LEN]
                for k in range(size):
                    tr_id[nxt, (tail + k) & t_mask] = sl_id[s, slot, k]
                si[nxt, T_LEN] += size
                tr_sz[nxt, (si[nxt, TB_HEAD] + si[nxt, TB_LEN]) & t_mask] = size
                si[nxt, TB_LEN] += 1
                if si[nxt, T_LEN] + adds[nxt] > t_cap or si[nxt, TB_LEN] + 1 > t_cap:
                    crowded = True
                pend_t[n_pend] = now + pf[nxt, NET_IN]
                pend_c[n_pend], pend_v[n_pend] = HOP | (nxt << 4), 0.0
                n_pend += 1
            sl_free[s, si[s, FREE_TOP]] = slot
            si[s, FREE_TOP] += 1
            dispatch_also = s
        elif kind == TIMER:  # StageServer._on_timer
            if si[stage, TIMER_SET] and sf[stage, TIMER_AT] == value:
                si[stage, TIMER_SET] = 0
            dispatch_also = stage
        else:  # HOP: the oldest batch in transit reaches its stage
            s = stage
            size = tr_sz[s, si[s, TB_HEAD]]
            si[s, TB_HEAD] = (si[s, TB_HEAD] + 1) & t_mask
            si[s, TB_LEN] -= 1
            head = si[s, T_HEAD]
            for k in range(size):
                tmp[k] = tr_id[s, (head + k) & t_mask]
            si[s, T_HEAD] = (head + size) & t_mask
            si[s, T_LEN] -= size
            arrive_to, count = s, size

        # -- step 0: arrive_many at ``arrive_to``; step 1: _dispatch at ``dispatch_also`` ---
        for step in range(2):
            s = arrive_to if step == 0 else dispatch_also
            if s < 0:
                continue
            qh, ql, busy = si[s, Q_HEAD], si[s, Q_LEN], si[s, BUSY]
            if pi[s, HAS_TIMEOUT]:  # _expire: the queue head gave up at enqueue + timeout
                limit = pf[s, TIMEOUT_S]
                while ql > 0 and q_enq[s, qh] + limit < now:
                    rid, t_drop = q_id[s, qh], q_enq[s, qh] + limit
                    qh = (qh + 1) & q_mask
                    ql -= 1
                    if record:
                        r_out[rid], r_drop[rid], r_done[rid] = TIMEOUT, s, t_drop
                    if stream:
                        ts_counts[1 + TIMEOUT, min(int(arrival[rid] * per_bin), last_bin)] += 1
                        if rid >= m0:
                            sums[s, TIMEOUTS] += 1
            if step == 0:  # enqueue, noting the queue each request found
                for k in range(count):
                    rid = tmp[k]
                    if record:
                        r_qlen[s, rid] = ql
                        r_enq[s, rid] = now
                    if stream:
                        b = min(int(arrival[rid] * per_bin), last_bin)
                        ts_qmax[s, b] = max(ts_qmax[s, b], ql)
                        if rid >= m0:
                            x = arrival[rid] - warmup
                            sums[s, REACHED] += 1
                            sums[s, QMAX] = max(sums[s, QMAX], ql)
                            sums[s, RN] += 1
                            sums[s, RX] += x
                            sums[s, RY] += ql
                            sums[s, RXY] += x * ql
                            sums[s, RXX] += x * x
                            sums[s, RX_MIN] = min(sums[s, RX_MIN], x)
                            sums[s, RX_MAX] = max(sums[s, RX_MAX], x)
                    pos = (qh + ql) & q_mask
                    q_id[s, pos] = rid
                    q_enq[s, pos] = now
                    ql += 1
                if ql + adds[s] > q_cap:
                    crowded = True
            # _dispatch: start batches while a worker is free and a batch is ready
            workers, max_batch, max_wait = pi[s, WORKERS], pi[s, MAX_BATCH], pf[s, MAX_WAIT]
            while ql > 0 and busy < workers:
                if ql < max_batch and max_wait > 0.0:
                    due = q_enq[s, qh] + max_wait
                    if due - now > TIME_EPS_S:  # _arm, unless an earlier timer will re-check
                        if not (si[s, TIMER_SET] and sf[s, TIMER_AT] <= due):
                            si[s, TIMER_SET] = 1
                            sf[s, TIMER_AT] = due
                            pend_t[n_pend] = now + (due - now)
                            pend_c[n_pend], pend_v[n_pend] = TIMER | (s << 4), due
                            n_pend += 1
                        break
                # _start: the head ``size`` requests, one service draw for the batch
                size = min(ql, max_batch)
                top = si[s, FREE_TOP] - 1
                slot = sl_free[s, top]
                si[s, FREE_TOP] = top
                h = d_head[s, size - 1]
                service = d_buf[s, size - 1, h]
                d_head[s, size - 1] = h + 1
                d_len[s, size - 1] -= 1
                if d_len[s, size - 1] < workers:
                    need = 1
                busy += 1
                end = now + service
                lo, hi = max(now, warmup), min(end, t_end)
                if hi > lo:
                    sf[s, BUSY_WIN] += hi - lo
                for k in range(size):
                    pos = (qh + k) & q_mask
                    rid = q_id[s, pos]
                    sl_id[s, slot, k] = rid
                    if record:
                        r_start[s, rid] = now
                        r_svc[s, rid] = service
                        r_bsz[s, rid] = size
                    if stream and rid >= m0:
                        wait = now - q_enq[s, pos]
                        lat = wait + service
                        sums[s, SERVED] += 1
                        sums[s, WAIT_SUM] += wait
                        sums[s, SERVICE_SUM] += service
                        sums[s, INV_BATCH_SUM] += 1.0 / size
                        wait_h[s, bucket(wait, SUB, SHIFT, n_main)] += 1
                        lat_h[s, bucket(lat, SUB, SHIFT, n_main)] += 1
                        sums[s, WAIT_LO] = min(sums[s, WAIT_LO], wait)
                        sums[s, WAIT_HI] = max(sums[s, WAIT_HI], wait)
                        sums[s, LAT_LO] = min(sums[s, LAT_LO], lat)
                        sums[s, LAT_HI] = max(sums[s, LAT_HI], lat)
                qh = (qh + size) & q_mask
                ql -= size
                sl_size[s, slot] = size
                pend_t[n_pend] = end
                pend_c[n_pend], pend_v[n_pend] = DONE | (s << 4) | (slot << 12), 0.0
                n_pend += 1
            capacity = pi[s, CAPACITY]
            if step == 0 and capacity >= 0:  # then the newest arrivals beyond capacity go
                while ql > capacity:
                    ql -= 1
                    rid = q_id[s, (qh + ql) & q_mask]
                    if record:
                        r_enq[s, rid] = math.nan
                        r_out[rid], r_drop[rid], r_done[rid] = SHED, s, now
                    if stream:
                        ts_counts[1 + SHED, min(int(arrival[rid] * per_bin), last_bin)] += 1
                        if rid >= m0:
                            sums[s, SHEDS] += 1
            si[s, Q_HEAD], si[s, Q_LEN], si[s, BUSY] = qh, ql, busy
        if next_source >= 0.0:  # _Source schedules the next arrival after delivering
            pend_t[n_pend], pend_c[n_pend], pend_v[n_pend] = next_source, SOURCE, 0.0
            n_pend += 1

        # -- push the new events in creation order (SimPy's event ids) ---------------------
        for k in range(n_pend):
            t, c, v = pend_t[k], pend_c[k], pend_v[k]
            e = eid
            eid += 1
            if c == SOURCE:
                src_t, src_e = t, e
                continue
            i = hn
            while i > 0:
                parent = (i - 1) >> 1
                if h_t[parent] < t or (h_t[parent] == t and h_e[parent] < e):
                    break
                h_t[i], h_e[i], h_c[i], h_v[i] = h_t[parent], h_e[parent], h_c[parent], h_v[parent]
                i = parent
            h_t[i], h_e[i], h_c[i], h_v[i] = t, e, c, v
            hn += 1
    gi[EID], gi[HEAP_N], gi[NEED_REFILL] = eid, hn, need
    gi[SRC], gi[SRC_EID], gf[SRC_T] = src_i, src_e, src_t
    gf[NOW] = now
    return status
