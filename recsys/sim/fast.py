"""The compiled engine: the SimPy engine's model and records, at millions of requests a second.

:func:`simulate_fast` runs the event loop of :mod:`recsys.sim.kernel` (Numba) on the same
pipeline as :func:`recsys.sim.engine.simulate`: FIFO replica pools, dynamic batching with
``max_wait_ms``, bounded queues that shed, queue timeouts and network hops. It draws service
times from the same :class:`~recsys.sim.service.BatchSampler` streams and replays SimPy's
event order, so for the same arrivals and seed it returns **identical per-request records**
(tested). It cannot autoscale (the autoscaler reads and resizes pools mid-run; use the SimPy
engine, which :func:`recsys.sim.select.choose_engine` does automatically).

With ``record=False`` nothing per request is kept: the kernel fills the streaming
accumulators of :mod:`recsys.sim.stream` (percentiles within 0.2%), so memory is bounded by
the requests in flight: 10M requests need about 10 MB beyond their 76 MB ``arrivals`` array
(the whole process peaks at about 320 MB, 236 MB of it the libraries it imports).

:func:`fifo_starts` (Kiefer-Wolfowitz recursion for a FIFO ``c``-server queue) stays as a
small reference for the plain FIFO case.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from recsys.errors import ConfigError
from recsys.sim import kernel as K
from recsys.sim.engine import StageSpec, _check_stages, check_arrivals, stage_streams
from recsys.sim.records import RequestLog
from recsys.sim.results import RunInfo, SimResult, summarize
from recsys.sim.select import supports
from recsys.sim.service import BatchSampler
from recsys.sim.stream import StreamStats, first_measured, summarize_stream

ENGINE_NAME = "numba-events"
_BUDGET = 1 << 20  # events between progress-bar updates


def _pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 1).bit_length()


class _Run:
    """Arrays of one compiled run and the Python side of its resumable loop."""

    def __init__(
        self,
        times: np.ndarray,
        stages: Sequence[StageSpec],
        samplers: list[BatchSampler],
        info: RunInfo,
        record: bool,
        stream: bool | None = None,
    ) -> None:
        stream = not record if stream is None else stream
        n, n_stages = times.size, len(stages)
        self.samplers = samplers
        self.chunk = samplers[0].chunk
        m0 = first_measured(times, info.warmup_s)
        self.n_measured = n - m0
        gp = np.zeros(K.N_GP)
        gp[[K.WARMUP, K.T_END, K.BIN_S]] = info.warmup_s, info.end_s, info.timeseries_bin_s
        gp[[K.M0, K.N_MEASURED, K.N_BATCHES]] = m0, n - m0, info.n_batches
        gp[K.N_BINS] = int(info.end_s // info.timeseries_bin_s) + 1
        pi = np.array(
            [
                [
                    s.workers,
                    s.max_batch,
                    -1 if s.queue_capacity is None else s.queue_capacity,
                    s.timeout_ms is not None,
                ]
                for s in stages
            ],
            dtype=np.int64,
        )
        pf = np.array(
            [
                [
                    s.max_wait_ms / 1000.0,
                    np.inf if s.timeout_ms is None else s.timeout_ms / 1000.0,
                    s.network_ms / 1000.0,
                ]
                for s in stages
            ]
        )
        self.p = K.Params(arrival=times, gp=gp, pi=pi, pf=pf)
        self.group = int(K.max_group(times, float(pf[0, K.NET_IN])))
        max_batch, max_workers = int(pi[:, K.MAX_BATCH].max()), int(pi[:, K.WORKERS].max())
        ring = _pow2(max(1024, 2 * self.group, 2 * max_batch))
        heap = 1024 + int(pi[:, K.WORKERS].sum()) + 4 * n_stages
        # Service-time buffers: every batch size starts with a few chunks (a short run pays
        # little); a size that runs low is topped up to many (a long run returns to Python
        # rarely), at most about 2**20 draws (8 MB) per stage.
        self.d_init = self.chunk * (2 + max_workers // self.chunk)
        many = max(4, min(16, (1 << 20) // (max_batch * self.chunk)))
        self.d_cap = max(self.d_init + 2 * self.chunk, self.chunk * many)
        self.st = K.State(
            gi=np.zeros(K.N_GI, np.int64),
            gf=np.zeros(K.N_GF),
            si=np.zeros((n_stages, K.N_SI), np.int64),
            sf=np.zeros((n_stages, K.N_SF)),
            h_t=np.zeros(heap),
            h_e=np.zeros(heap, np.int64),
            h_c=np.zeros(heap, np.int64),
            h_v=np.zeros(heap),
            q_id=np.zeros((n_stages, ring), np.int64),
            q_enq=np.zeros((n_stages, ring)),
            sl_id=np.zeros((n_stages, max_workers, max_batch), np.int64),
            sl_size=np.zeros((n_stages, max_workers), np.int64),
            sl_free=np.tile(np.arange(max_workers, dtype=np.int64)[::-1], (n_stages, 1)),
            tr_id=np.zeros((n_stages, ring), np.int64),
            tr_sz=np.zeros((n_stages, ring), np.int64),
            d_buf=np.zeros((n_stages, max_batch, self.d_cap)),
            d_head=np.zeros((n_stages, max_batch), np.int64),
            d_len=np.zeros((n_stages, max_batch), np.int64),
            tmp=np.zeros(max(self.group, max_batch), np.int64),
        )
        self.st.si[:, K.FREE_TOP] = pi[:, K.WORKERS]
        first = times[0] + pf[0, K.NET_IN]  # SimPy: Timeout(env, times[0]) from now = 0
        self.st.gf[K.SRC_T], self.st.gi[K.SRC_EID], self.st.gi[K.EID] = first, 0, 1
        self.log = _record_log(times, n_stages) if record else None
        self.rec = _record_arrays(self.log, n_stages) if record else _dummy_record(n_stages)
        self.stats = (
            StreamStats.empty(n_stages, info.n_batches, int(gp[K.N_BINS]))
            if stream
            else StreamStats.empty(n_stages, 1, 1)
        )
        self.acc = K.Stream(**vars(self.stats))
        self.flags = (record, stream)
        self.refill(self.d_init)

    def refill(self, cap: int | None = None) -> None:
        """Top up every batch size's service-time buffer that holds fewer than ``workers``
        (whole chunks, up to ``cap`` draws)."""
        st, pi = self.st, self.p.pi
        cap = self.d_cap if cap is None else cap
        for s, sampler in enumerate(self.samplers):
            workers = pi[s, K.WORKERS]
            for b in range(int(pi[s, K.MAX_BATCH])):
                n = int(st.d_len[s, b])
                if n >= workers:
                    continue
                h, buf = int(st.d_head[s, b]), st.d_buf[s, b]
                buf[:n] = buf[h : h + n].copy()
                while n + self.chunk <= cap:
                    buf[n : n + self.chunk] = sampler.draw_chunk(b + 1)
                    n += self.chunk
                st.d_head[s, b], st.d_len[s, b] = 0, n
        st.gi[K.NEED_REFILL] = 0

    def grow(self) -> None:
        """Double whichever ring or heap the next event could overflow."""
        st, p = self.st, self.p
        add = np.concatenate([[self.group], p.pi[:-1, K.MAX_BATCH]])
        changes: dict[str, np.ndarray] = {}
        cap = st.q_id.shape[1]
        if (st.si[:, K.Q_LEN] + add > cap).any():
            heads, lens = st.si[:, K.Q_HEAD], st.si[:, K.Q_LEN]
            changes["q_id"] = _relayout(st.q_id, heads, lens)
            changes["q_enq"] = _relayout(st.q_enq, heads, lens)
            st.si[:, K.Q_HEAD] = 0
        cap = st.tr_id.shape[1]
        if (st.si[:, K.T_LEN] + add > cap).any() or (st.si[:, K.TB_LEN] + 1 > cap).any():
            changes["tr_id"] = _relayout(st.tr_id, st.si[:, K.T_HEAD], st.si[:, K.T_LEN])
            changes["tr_sz"] = _relayout(st.tr_sz, st.si[:, K.TB_HEAD], st.si[:, K.TB_LEN])
            st.si[:, K.T_HEAD] = st.si[:, K.TB_HEAD] = 0
        need = 2 + int(p.pi[:, K.WORKERS].sum()) + 2 * p.pi.shape[0]
        if st.gi[K.HEAP_N] + need > st.h_t.size:
            for key in ("h_t", "h_e", "h_c", "h_v"):
                old = getattr(st, key)
                changes[key] = np.concatenate([old, np.zeros_like(old)])
        self.st = st._replace(**changes)

    def loop(self, bar: tqdm | None) -> None:
        while True:
            status = K.run(self.p, self.st, self.rec, self.acc, self.flags, self.group, _BUDGET)
            if status == K.FINISHED:
                break
            if status == K.REFILL:
                self.refill()
            elif status == K.GROW:
                self.grow()
            elif bar is not None:
                bar.update(int(self.st.gi[K.SRC]) - bar.n)
        if bar is not None:
            bar.update(self.p.arrival.size - bar.n)


def _relayout(ring: np.ndarray, heads: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """A ring twice as large with each row's live entries moved to the front, in order."""
    cap = ring.shape[1]
    out = np.zeros((ring.shape[0], 2 * cap), dtype=ring.dtype)
    for s in range(ring.shape[0]):
        idx = (int(heads[s]) + np.arange(int(lens[s]))) & (cap - 1)
        out[s, : idx.size] = ring[s, idx]
    return out


def _record_log(times: np.ndarray, n_stages: int) -> RequestLog:
    n = times.size
    return RequestLog.from_arrays(
        times,
        enqueue_s=np.full((n_stages, n), np.nan),
        start_s=np.full((n_stages, n), np.nan),
        service_s=np.full((n_stages, n), np.nan),
        batch_size=np.zeros((n_stages, n), np.int64),
        queue_len=np.zeros((n_stages, n), np.int64),
    )


def _record_arrays(log: RequestLog | None, n_stages: int) -> K.Record:
    assert log is not None
    return K.Record(
        enq=log.stacked["enqueue_s"],
        start=log.stacked["start_s"],
        service=log.stacked["service_s"],
        batch=log.stacked["batch_size"],
        qlen=log.stacked["queue_len"],
        outcome=np.frombuffer(log.outcome, dtype=np.int8),
        drop_stage=np.frombuffer(log.drop_stage, dtype=np.int8),
        done=np.frombuffer(log.done_s, dtype=np.float64),
    )


def _dummy_record(n_stages: int) -> K.Record:
    f, i = np.zeros((n_stages, 1)), np.zeros((n_stages, 1), np.int64)
    return K.Record(
        f, f, f, i, i, np.zeros(1, np.int8), np.zeros(1, np.int8), np.zeros(1, np.float64)
    )


def simulate_fast(
    arrivals: np.ndarray | Sequence[float],
    stages: Sequence[StageSpec],
    seed: int = 0,
    warmup_s: float = 0.0,
    record: bool = True,
    *,
    autoscaler: object | None = None,
    progress: bool = False,
    timeseries_bin_s: float = 60.0,
    n_batches: int = 20,
    confidence: float = 0.95,
) -> SimResult:
    """Same contract and same results as :func:`~recsys.sim.engine.simulate`, compiled."""
    if not supports(stages, autoscaler):
        raise ConfigError(
            "the compiled engine cannot autoscale nor draw warm/cold service times (use "
            "engine='simpy') and needs 1-127 stages"
        )
    times = check_arrivals(arrivals)
    _check_stages(stages)
    if not 0.0 <= warmup_s <= times[-1]:
        raise ConfigError(f"warmup_s={warmup_s} must be >= 0 and before the last arrival")
    t_end = float(times[-1])
    samplers = [
        BatchSampler(spec.service, rng)
        for spec, rng in zip(stages, stage_streams(seed, len(stages)), strict=True)
    ]
    info = RunInfo(
        seed=seed,
        warmup_s=warmup_s,
        end_s=t_end,
        sim_end_s=t_end,
        n_batches=n_batches,
        confidence=confidence,
        timeseries_bin_s=timeseries_bin_s,
        engine=ENGINE_NAME,
    )
    sim = _Run(times, stages, samplers, info, record)
    bar = tqdm(total=times.size, desc="simulate", unit="req", disable=not progress, leave=False)
    sim.loop(bar if progress else None)
    bar.close()
    info = RunInfo(**{**vars(info), "sim_end_s": max(float(sim.st.gf[K.NOW]), t_end)})
    span = t_end - warmup_s
    window = {
        "start": [(0.0, 0.0)] * len(stages),
        "end": [
            (float(sim.st.sf[s, K.BUSY_WIN]), spec.workers * span) for s, spec in enumerate(stages)
        ],
    }
    replica_logs = {i: [(0.0, spec.replicas, 0)] for i, spec in enumerate(stages)}
    if sim.log is not None:
        return summarize(
            sim.log, stages, info, window=window, replica_logs=replica_logs, record=True
        )
    return summarize_stream(
        sim.stats,
        stages,
        info,
        n_requests=times.size,
        n_measured=sim.n_measured,
        window=window,
        replica_logs=replica_logs,
    )


def _kiefer_wolfowitz(arrivals: np.ndarray, services: np.ndarray, servers: int) -> np.ndarray:
    """Start times of FIFO service with ``servers`` servers (arrivals sorted)."""
    free = np.zeros(servers)  # when each server frees up, sorted ascending
    starts = np.empty(arrivals.size)
    for i in range(arrivals.size):
        start = max(arrivals[i], free[0])
        starts[i] = start
        done = start + services[i]
        j = 1  # insertion: drop free[0], put ``done`` in order
        while j < servers and free[j] < done:
            free[j - 1] = free[j]
            j += 1
        free[j - 1] = done
    return starts


fifo_starts: Callable[[np.ndarray, np.ndarray, int], np.ndarray] = K._jit(_kiefer_wolfowitz)


def describe() -> dict[str, Any]:
    """Which implementation runs (Numba or plain Python)."""
    return {"kernel": "numba" if K.COMPILED else "python"}


__all__ = ["ENGINE_NAME", "describe", "fifo_starts", "simulate_fast", "supports"]
