"""Access streams through the DRAM timing kernel: cycles, activations and achieved bandwidth.

A stream is one channel's sequence of column accesses; channels are interleaved at burst or row
granularity and behave alike, so one channel's result scales to the stack. Large streams are
summarised: a window of a repeating pattern is simulated and the steady-state rate extended.

[NeuPIMs-repo] github.com/casys-kaist/NeuPIMs, the NeuPIMs paper's simulator (extern/NewtonSim:
the PIM command timings of its HBM2 controller).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from archsim.hw.memory.standards import DramStandard
from archsim.kernels import dram_timing as k


@dataclass(frozen=True)
class StreamStats:
    """One channel serving a stream.

    Attributes
    ----------
    cycles:
        Controller cycles to serve it.
    latency_s:
        The same in seconds.
    bytes:
        Bytes transferred (bursts x burst size).
    achieved_bw_bytes_per_s:
        ``bytes / latency_s``.
    activations, row_hits, refreshes:
        Counts from the kernel.
    """

    cycles: float
    latency_s: float
    bytes: float
    achieved_bw_bytes_per_s: float
    activations: float
    row_hits: float
    refreshes: float


def timing_params(std: DramStandard, *, banks: int | None = None) -> np.ndarray:
    """The kernel's parameter array for ``std`` (cycles of its controller clock)."""
    p = np.zeros(k.PARAM_COUNT)
    p[k.T_RCD] = std.cycles(std.t_rcd_s)
    p[k.T_RP] = std.cycles(std.t_rp_s)
    p[k.T_RAS] = std.cycles(std.t_ras_s)
    p[k.T_CL] = std.cycles(std.t_cl_s)
    p[k.T_CCD_S] = std.t_ccd_s_cycles
    p[k.T_CCD_L] = std.t_ccd_l_cycles
    p[k.T_RRD_S] = std.cycles(std.t_rrd_s_s)
    p[k.T_RRD_L] = std.cycles(std.t_rrd_l_s)
    p[k.T_FAW] = std.cycles(std.t_faw_s)
    p[k.T_REFI] = std.cycles(std.t_refi_s)
    p[k.T_RFC] = std.cycles(std.t_rfc_s)
    p[k.T_BURST] = std.burst_cycles
    p[k.T_RTP] = std.cycles(std.t_rtp_s)
    p[k.BANKS_PER_GROUP] = std.banks_per_group
    p[k.BANKS] = banks if banks is not None else std.banks
    return p


def streaming_pattern(std: DramStandard, requests: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequential bursts with bank-group-interleaved address mapping.

    Consecutive bursts rotate over bank groups (so ``tCCD_S`` applies), then walk the columns of
    one row per group, then the banks, then the rows: the mapping controllers use for streams.
    """
    i = np.arange(requests, dtype=np.int64)
    groups = std.banks // std.banks_per_group
    columns = std.row_bytes // std.burst_bytes
    group = i % groups
    rest = i // groups // columns
    bank_in_group = rest % std.banks_per_group
    row = rest // std.banks_per_group
    return group * std.banks_per_group + bank_in_group, row


def random_pattern(
    std: DramStandard, requests: int, *, seed: int = 0, rows: int = 32768
) -> tuple[np.ndarray, np.ndarray]:
    """Bursts to uniformly random banks and rows (every access a likely row miss)."""
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, std.banks, requests, dtype=np.int64),
        rng.integers(0, rows, requests, dtype=np.int64),
    )


def serve_stream(std: DramStandard, banks: np.ndarray, rows: np.ndarray) -> StreamStats:
    """Serve one channel's stream through the Numba kernel."""
    cycles, acts, hits, refs = k.simulate_dram_stream(
        np.ascontiguousarray(banks, dtype=np.int64),
        np.ascontiguousarray(rows, dtype=np.int64),
        timing_params(std),
    )
    seconds = cycles / std.clock_hz
    moved = float(len(banks) * std.burst_bytes)
    return StreamStats(
        cycles, seconds, moved, moved / seconds if seconds else 0.0, acts, hits, refs
    )


@lru_cache(maxsize=256)
def _pim_rows(
    std: DramStandard, rows: int, commands_per_row: int, command_cycles: float
) -> tuple[float, float, float]:
    banks = np.zeros(rows * commands_per_row, dtype=np.int64)
    row_ids = np.repeat(np.arange(rows, dtype=np.int64), commands_per_row)
    p = timing_params(std, banks=1)
    # the operands stay in the bank: no burst on the channel bus, no CAS latency to the pins;
    # all-bank commands follow each other at the same-bank-group spacing or the MAC rate
    p[k.T_BURST] = 0.0
    p[k.T_CL] = 0.0
    p[k.T_CCD_S] = p[k.T_CCD_L] = max(float(std.t_ccd_l_cycles), command_cycles)
    cycles, acts, _hits, refs = k.simulate_dram_stream(banks, row_ids, p)
    return cycles, acts, refs


# rows simulated before the steady state is extended: a few refresh intervals
_PIM_WINDOW_ROWS = 512


def pim_row_stream(
    std: DramStandard, rows: float, commands_per_row: int, command_cycles: float = 0.0
) -> tuple[float, float, float]:
    """All-bank PIM GEMV: every bank streams ``rows`` rows, ``commands_per_row`` MAC commands each.

    In all-bank mode one command drives every bank of the channel in lockstep, so one bank's
    timeline is the channel's. Returns (cycles, activations per bank, refreshes); runs longer
    than a window of rows are extended at the window's steady rate.
    """
    whole = int(np.ceil(rows))
    if whole <= _PIM_WINDOW_ROWS:
        return _pim_rows(std, max(whole, 1), commands_per_row, command_cycles)
    cycles, acts, refs = _pim_rows(std, _PIM_WINDOW_ROWS, commands_per_row, command_cycles)
    scale = rows / _PIM_WINDOW_ROWS
    return cycles * scale, acts * scale, refs * scale


def pim_gemv_row_cycles(
    std: DramStandard, *, banks_per_channel: int, comps: int, readres: int
) -> float:
    """Controller cycles of one all-bank GEMV over one row of every bank of a channel.

    The command sequence is the one NeuPIMs' PIM controller issues [NeuPIMs-repo]
    (extern/NewtonSim/src/channel_state.cc ``EstimatePIMOperationLatency`` and timing.cc):

    * the row left open by the previous GEMV closes: read-to-precharge ``tRTP``, then ``tRP``;
    * ganged activation: one G_ACT per bank group; G_ACTs of one rank are ``tFAW`` apart (the
      power window that also limits four single-bank activations), the ranks of a channel
      activate side by side; the first command follows the last G_ACT after ``tRCD``;
    * ``comps`` MAC commands, each ``max(burst, tCCD_S)`` cycles, never fewer than six (the
      MAC pipeline fill);
    * ``readres`` result reads (one per GEMV of the row), the first overlapping the last MAC
      command, the rest ``max(burst, tCCD_L)`` apart.

    Refresh takes ``tRFC`` of every ``tREFI`` from the channel, PIM commands included.

    Parameters
    ----------
    std:
        DRAM standard of the channel.
    banks_per_channel:
        Banks driven by one all-bank command (all ranks of the channel).
    comps, readres:
        MAC commands and result reads of this row.
    """
    if comps < 1 or readres < 1:
        raise ValueError(
            f"a PIM row needs at least one MAC command and one result read, got comps={comps}, "
            f"readres={readres}"
        )
    # ranks activate side by side: they add banks, not time
    gacts_per_rank = max(1, min(banks_per_channel, std.banks) // std.banks_per_group)
    close = std.cycles(std.t_rtp_s) + std.cycles(std.t_rp_s)
    activate = std.cycles(std.t_faw_s) * (gacts_per_rank - 1) + std.cycles(std.t_rcd_s)
    command = max(std.burst_cycles, float(std.t_ccd_s_cycles))
    result = max(std.burst_cycles, float(std.t_ccd_l_cycles))
    busy = close + activate + command * max(comps, 6) + result * (readres - 1)
    return busy / (1.0 - std.t_rfc_s / std.t_refi_s)


def pim_gwrite_cycles(std: DramStandard, *, commands_per_row: int) -> float:
    """Controller cycles to load one input vector (a row's worth) into the PIM global buffer.

    NewtonSim's GWRITE ([NeuPIMs-repo] extern/NewtonSim/src/configuration.cc: ``gwrite_delay =
    (tCCD_S + tCCD_L) x 32``, 32 being the MAC-width columns of a 1 KiB row) after the source row
    opens (``tRP + tRCD``, channel_state.cc ``EstimatePIMOperationLatency``).
    """
    per_column = float(std.t_ccd_s_cycles + std.t_ccd_l_cycles)
    return std.cycles(std.t_rp_s) + std.cycles(std.t_rcd_s) + per_column * commands_per_row


# rows of a bank bundle simulated: several refresh intervals at a few hundred ns a row
_BUNDLE_WINDOW_ROWS = 64


@lru_cache(maxsize=16)
def bundle_stream_efficiency(std: DramStandard, banks: int) -> float:
    """Achieved share of a bank bundle's peak when a logic-die unit streams it alone.

    Duplex's Logic-PIM reads a bundle of ``banks`` banks (two per bank group) with one
    command, every bank one burst each ``tCCD_L`` ([Duplex] Yun et al., MICRO 2024, Sec. 4.3),
    and works on one bundle at a time, so the next rows of the bundle's banks open only after
    the current ones are read out: each row pays the precharge, the staggered activations
    (``tRRD``, ``tFAW``) and ``tRCD`` with nothing to hide them behind. Served by the DRAM
    timing kernel with the bundle's reads spread evenly over each ``tCCD_L``; refresh included.
    """
    groups = std.banks // std.banks_per_group
    per_group = max(1, banks // groups)
    bundle = groups * per_group
    columns = std.row_bytes // std.burst_bytes
    # bank ids by bank group first, so consecutive reads change group
    order = np.array([g * per_group + j for j in range(per_group) for g in range(groups)])
    bank_ids = np.tile(order, _BUNDLE_WINDOW_ROWS * columns).astype(np.int64)
    row_ids = np.repeat(np.arange(_BUNDLE_WINDOW_ROWS, dtype=np.int64), columns * bundle)
    p = timing_params(std, banks=bundle)
    p[k.BANKS_PER_GROUP] = per_group
    p[k.T_BURST] = 0.0  # data leave over the bundle's own TSVs, not the channel bus
    p[k.T_CL] = 0.0
    spacing = std.t_ccd_l_cycles / bundle
    p[k.T_CCD_S] = p[k.T_CCD_L] = spacing
    cycles, _acts, _hits, _refs = k.simulate_dram_stream(bank_ids, row_ids, p)
    return float(len(bank_ids) * spacing / cycles)
