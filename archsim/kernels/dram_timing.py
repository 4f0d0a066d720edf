"""One DRAM channel serving an in-order stream of column accesses, command by command.

Semantics shared by the Numba kernel and its plain-Python reference (tests compare the two):

* Requests are all queued at time 0 and served in order; each names a bank (``bank_group *
  banks_per_group + bank``) and a row. A request to the open row of its bank is a row hit and
  needs one column command; any other request precharges the bank (if a row is open) and
  activates its row first (open-page policy).
* A column command waits for ``tRCD`` after its bank's activation and for ``tCCD_L`` (same bank
  group) or ``tCCD_S`` (another group) after the previous column command, and never less than the
  burst time ``tBURST`` when data use the channel's bus.
* A precharge waits for ``tRAS`` after the activation and ``tRTP`` after the bank's last column
  command; the next activation of the bank waits ``tRP`` after it. Activations are spaced by
  ``tRRD_L`` (same group) or ``tRRD_S`` (any), and at most four fall in any ``tFAW`` window.
* Every ``tREFI`` the channel refreshes all banks: it precharges them (``tRP``) and blocks for
  ``tRFC``; rows are closed afterwards.
* Activations may be issued ahead of earlier requests' column commands to other banks (a
  controller with per-bank queues), so bank parallelism hides ``tRCD`` and ``tRP``.

Timings are in controller clock cycles; parameters travel in one float64 array indexed by the
``T_*`` constants below.
"""

from __future__ import annotations

import numba
import numpy as np

T_RCD, T_RP, T_RAS, T_CL, T_CCD_S, T_CCD_L, T_RRD_S, T_RRD_L, T_FAW = 0, 1, 2, 3, 4, 5, 6, 7, 8
T_REFI, T_RFC, T_BURST, T_RTP, BANKS_PER_GROUP, BANKS = 9, 10, 11, 12, 13, 14
PARAM_COUNT = 15


@numba.njit(cache=True)
def simulate_dram_stream(
    banks: np.ndarray, rows: np.ndarray, params: np.ndarray
) -> tuple[float, float, float, float]:
    """Serve the request stream of one channel.

    Parameters
    ----------
    banks, rows:
        int64 arrays, one entry per column access (a burst of the channel, or one all-bank PIM
        column command).
    params:
        float64 array of ``PARAM_COUNT`` timings and sizes (``T_*`` indices), in cycles.

    Returns
    -------
    cycles:
        Cycles from time 0 to the end of the last data transfer.
    activations:
        Row activations issued (row misses).
    row_hits:
        Requests served from an open row.
    refreshes:
        All-bank refreshes that fell inside the run.
    """
    n = banks.shape[0]
    nbanks = int(params[BANKS])
    per_group = int(params[BANKS_PER_GROUP])
    groups = (nbanks + per_group - 1) // per_group
    open_row = np.full(nbanks, -1, dtype=np.int64)
    act_time = np.full(nbanks, -1e18)
    bank_free = np.zeros(nbanks)  # earliest next activation (after a precharge)
    last_col_bank = np.full(nbanks, -1e18)
    last_act_group = np.full(groups, -1e18)
    faw = np.full(4, -1e18)  # the last four activation times, oldest at faw_pos
    faw_pos = 0
    last_act = -1e18
    last_col = -1e18
    last_group = -1
    data_end = 0.0
    floor = 0.0  # nothing is issued before the end of the last refresh
    next_refresh = params[T_REFI]
    activations = 0.0
    hits = 0.0
    refreshes = 0.0
    ccd_s = max(params[T_CCD_S], params[T_BURST])
    ccd_l = max(params[T_CCD_L], params[T_BURST])
    for i in range(n):
        b = banks[i]
        r = rows[i]
        g = b // per_group
        # a refresh falls due once the channel's command stream has passed tREFI
        while max(last_col, floor) >= next_refresh:
            start = max(next_refresh, data_end)
            floor = start + params[T_RP] + params[T_RFC]
            for k in range(nbanks):
                open_row[k] = -1
                bank_free[k] = floor
            next_refresh += params[T_REFI]
            refreshes += 1.0
        spacing = ccd_l if g == last_group else ccd_s
        if open_row[b] == r:
            hits += 1.0
            col = max(max(last_col + spacing, act_time[b] + params[T_RCD]), floor)
        else:
            earliest = max(bank_free[b], floor)
            if open_row[b] != -1:
                precharge = max(act_time[b] + params[T_RAS], last_col_bank[b] + params[T_RTP])
                earliest = max(earliest, precharge + params[T_RP])
            act = max(earliest, last_act + params[T_RRD_S])
            act = max(act, last_act_group[g] + params[T_RRD_L])
            act = max(act, faw[faw_pos] + params[T_FAW])
            faw[faw_pos] = act
            faw_pos = (faw_pos + 1) % 4
            last_act = act
            last_act_group[g] = act
            act_time[b] = act
            open_row[b] = r
            activations += 1.0
            col = max(max(last_col + spacing, act + params[T_RCD]), floor)
        last_col = col
        last_col_bank[b] = col
        last_group = g
        data_end = max(data_end, col + params[T_CL] + params[T_BURST])
    return data_end, activations, hits, refreshes


def simulate_dram_stream_reference(
    banks: list[int] | np.ndarray, rows: list[int] | np.ndarray, params: list[float] | np.ndarray
) -> tuple[float, float, float, float]:
    """Plain-Python statement of the same channel, with state kept per bank in dicts.

    Each command time is the latest of its constraints, listed one by one; same parameters and
    returns as :func:`simulate_dram_stream`.
    """
    p = [float(x) for x in params]
    nbanks = int(p[BANKS])
    per_group = int(p[BANKS_PER_GROUP])
    state = {
        bank: {"row": None, "act": -1e18, "free": 0.0, "last_col": -1e18} for bank in range(nbanks)
    }
    group_act: dict[int, float] = {}
    acts: list[float] = []
    last_col, last_group, data_end, floor = -1e18, None, 0.0, 0.0
    next_refresh = p[T_REFI]
    counts = {"act": 0.0, "hit": 0.0, "ref": 0.0}
    for bank, row in zip(banks, rows, strict=True):
        bank, row = int(bank), int(row)
        group = bank // per_group
        while max(last_col, floor) >= next_refresh:
            floor = max(next_refresh, data_end) + p[T_RP] + p[T_RFC]
            for s in state.values():
                s["row"] = None
                s["free"] = floor
            next_refresh += p[T_REFI]
            counts["ref"] += 1
        s = state[bank]
        spacing = max(p[T_CCD_L] if group == last_group else p[T_CCD_S], p[T_BURST])
        if s["row"] == row:
            counts["hit"] += 1
            act_done = s["act"] + p[T_RCD]
        else:
            constraints = [s["free"], floor]
            if s["row"] is not None:
                precharge = max(s["act"] + p[T_RAS], s["last_col"] + p[T_RTP])
                constraints.append(precharge + p[T_RP])
            constraints.append((acts[-1] if acts else -1e18) + p[T_RRD_S])
            constraints.append(group_act.get(group, -1e18) + p[T_RRD_L])
            constraints.append((acts[-4] if len(acts) >= 4 else -1e18) + p[T_FAW])
            act = max(constraints)
            acts.append(act)
            group_act[group] = act
            s["act"], s["row"] = act, row
            counts["act"] += 1
            act_done = act + p[T_RCD]
        col = max(last_col + spacing, act_done, floor)
        last_col = col
        s["last_col"] = col
        last_group = group
        data_end = max(data_end, col + p[T_CL] + p[T_BURST])
    return data_end, counts["act"], counts["hit"], counts["ref"]
