"""NeuPIMs (Heo et al., ASPLOS 2024): throughput of NPU + dual-row-buffer PIM with sub-batch
interleaving, against NPU-only, naive (blocked) NPU+PIM and GPU-only, from archsim's models."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from archsim.config import load_machine
from archsim.hw.machine import Machine
from archsim.report.document import Document, Heading, Paragraph, Table
from archsim.reproduce.base import Metric, Reproduction, metrics_table, register_reproduction
from archsim.shipped import resolve
from archsim.sim.system import SystemPlan, simulate_decode_step
from archsim.workloads.models.presets import ModelArchitecture

# GPT-3 7B as NeuPIMs' repository configures it (configs/model_configs/gpt3-7B.json: 32 heads,
# d_model 4096, vocabulary 50304, n_tp 4); 32 layers and a 4x GELU FFN from Brown et al. 2020
GPT3_7B = ModelArchitecture(
    name="gpt3-7b",
    d_model=4096,
    layers=32,
    heads=32,
    kv_heads=32,
    head_dim=128,
    d_ff=16384,
    vocab=50304,
    norm="layernorm",
    activation="gelu",
)
TENSOR_PARALLEL = 4  # NeuPIMs repository gpt3-7B.json n_tp
# KV-cache lengths of the 512 requests of the repository's default run (brun.sh cli_config:
# request-traces/clb/share-gpt2-bs512-ms7B-tp4-clb-0.csv, column seq_len, in file order):
# ShareGPT conversations for GPT-3 7B at tensor parallel 4, batch 512
_SHAREGPT_BS512 = """
2048 2048 1004 942 861 1548 847 824 849 754 744 729 724 743 712 777 661 651 643 637 633 765 634
628 2048 626 966 596 585 573 568 622 565 559 545 541 2048 566 543 543 539 532 610 554 526 509
572 522 497 493 489 489 479 556 508 479 557 553 474 451 447 441 436 436 953 789 438 426 424 516
465 443 429 428 427 2048 866 533 466 408 409 401 400 392 402 397 395 386 383 502 426 376 372 371
422 402 373 370 421 395 373 366 360 358 1185 416 384 355 355 354 472 360 545 350 339 332 329 322
321 363 340 326 324 313 354 340 337 324 303 388 362 317 302 300 299 299 2048 305 295 291 289 283
283 282 1838 485 320 308 290 289 288 280 277 274 273 1046 327 302 280 269 268 267 264 540 524
410 346 339 275 267 265 265 260 259 257 878 429 285 246 245 245 243 241 725 321 284 255 247 246
240 238 235 353 249 248 240 236 231 230 226 221 2048 1001 343 288 239 237 235 225 224 221 217
217 217 215 215 214 2048 550 547 293 243 234 231 221 221 219 216 213 212 211 208 203 203 379 361
228 220 216 213 207 206 203 203 203 201 201 196 191 248 225 224 209 209 205 198 193 193 192 190
188 188 186 186 185 185 538 346 207 199 192 190 182 181 172 267 186 183 180 178 177 174 172 171
169 167 555 373 248 196 181 178 172 166 165 161 159 157 155 155 154 152 151 198 197 193 192 176
161 160 160 157 148 146 141 258 172 157 151 143 139 139 138 137 133 263 249 221 155 150 147 136
136 133 131 131 129 126 184 160 147 133 129 127 127 126 122 121 120 117 116 114 113 111 375 354
312 232 122 121 118 117 117 115 113 113 111 111 109 108 106 104 266 199 175 119 108 103 102 101
101 100 99 98 97 96 94 91 277 228 212 156 102 99 99 95 94 93 93 92 92 89 84 82 228 167 119 103
96 96 84 84 74 73 72 71 1239 135 133 73 69 69 66 63 301 202 185 155 90 76 75 70 65 63 63 59 52
51 227 146 74 73 70 60 58 58 57 54 51 50 50 49 45 44 1009 125 117 80 75 53 43 40 40 37 34 453
105 76 63 44 44 41 33 32 28 25 24 21 568 258 103 95 74 58 41 36 31 30 27 21 19 18 18 14 127 74
48 37 34 33 32 27 22 22 21 15 15 12 7 6 6 1
"""
SHAREGPT_CONTEXTS = tuple(int(x) for x in _SHAREGPT_BS512.split())
BATCH = len(SHAREGPT_CONTEXTS)
TOLERANCE = 0.15
PAPER = {"over_npu_only": 2.4, "over_naive_npu_pim": 1.6, "over_gpu_only": 3.0}


def _machine(name: str) -> Machine:
    return Machine.from_config(load_machine(resolve(name, "archsim.hwconfigs")).config)


def systems_tokens_per_s(contexts: Sequence[int] = SHAREGPT_CONTEXTS) -> dict[str, float]:
    """Modelled decode throughput (tokens/s per device) of the four systems."""
    contexts = [int(c) for c in contexts]
    runs = {
        "neupims": ("neupims", SystemPlan("npu", "pim", sub_batches=2)),
        "naive_npu_pim": ("neupims_naive", SystemPlan("npu", "pim")),
        "npu_only": ("neupims_npu_only", SystemPlan("npu", "npu")),
        "gpu_only": ("neupims_gpu_a100_40gb", SystemPlan("a100", "a100")),
    }
    out = {}
    for label, (machine_name, plan) in runs.items():
        step = simulate_decode_step(
            _machine(machine_name), GPT3_7B, contexts, plan, tensor_parallel=TENSOR_PARALLEL
        )
        out[label] = step.tokens_per_s
    return out


@register_reproduction("neupims")
def reproduce_neupims() -> Reproduction:
    tps = systems_tokens_per_s()
    ours = {
        "over_npu_only": tps["neupims"] / tps["npu_only"],
        "over_naive_npu_pim": tps["neupims"] / tps["naive_npu_pim"],
        "over_gpu_only": tps["neupims"] / tps["gpu_only"],
    }
    metrics = {
        f"throughput_{k}": Metric(PAPER[k], ours[k], TOLERANCE, "x", f"NeuPIMs throughput {k}")
        for k in PAPER
    }
    doc = Document("NeuPIMs reproduction")
    doc.add(Paragraph("Regenerate with `archsim reproduce neupims`."))
    doc.add(Heading("Setup"))
    doc.add(
        Paragraph(
            f"GPT-3 7B decode, tensor parallel {TENSOR_PARALLEL} (one device's share modelled, "
            f"all-reduces left out for every system), batch {BATCH}: the ShareGPT requests of the "
            "NeuPIMs repository's default run (request-traces/clb/share-gpt2-bs512-ms7B-tp4-clb-0"
            f".csv; KV-cache lengths 1 to {max(SHAREGPT_CONTEXTS)}, mean "
            f"{sum(SHAREGPT_CONTEXTS) / BATCH:.0f}). Machines: hwconfigs/neupims.yaml (NPU + "
            "dual-row-buffer PIM, two interleaved sub-batches), neupims_naive.yaml (blocked-mode "
            "PIM, NPU and PIM take turns), neupims_npu_only.yaml, and "
            "neupims_gpu_a100_40gb.yaml as the GPU-only system (the paper's Sec. 8.1: an A100 "
            "40GB). Each system runs one decode step through archsim.sim.system: GEMMs on the "
            "NPU (tiling model), attention on PIM or on the NPU/GPU."
        )
    )
    doc.add(
        Paragraph(
            "PIM attention follows the repository's PIM: each request's K and V live in one "
            "channel (NeuPIMs' greedy channel load balancing; round robin for the naive "
            "baseline), so a channel runs its requests one after another and the busiest channel "
            "sets the time. K rows hold four heads of one token per bank (32 tokens per all-bank "
            "row); V rows hold up to 512 tokens of one head dimension, so short contexts activate "
            "mostly empty V rows. Every all-bank row pays a ganged activation (one G_ACT per bank "
            "group, tFAW apart within a rank, then tRCD), MAC commands at max(burst, tCCD_S) and "
            "result reads; every query and score chunk is first written to the global buffer. "
            "The scores go to the NPU's vector unit for the softmax: in blocked mode only once "
            "every channel has finished the score GEMVs, so the batch waits for the softmax "
            "between the two GEMVs; with dual row buffers head by head while the next heads' "
            "GEMVs run (the paper's Sec. 6.1). With dual row buffers the NPU's reads run beside "
            "PIM, but the "
            "PIM commands take the channel's column-command slots first, so NPU ops running "
            "beside a PIM phase get the remaining share of the channel bandwidth."
        )
    )
    doc.add(Heading("Assumptions"))
    doc.add(
        Paragraph(
            "The paper's headline figures are averages over GPT-3 7B to 175B, ShareGPT and "
            "Alpaca and batches 64 to 512 (Sec. 8.2: NPU+PIM averages 1.5x over NPU-only, and "
            "1.5 x 1.6 = 2.4); this reproduction runs one point of that grid, the repository's "
            "default run, at which the paper reports its gains above average (they grow with "
            "batch size and are larger on ShareGPT). One decode step of the trace's batch "
            "stands for the paper's steady state; prefill and request turnover are left out for "
            "every system alike. The paper measured its GPU-only system running PyTorch; it is "
            "modelled here by archsim's GPU model with the A100 40GB's memory."
        )
    )
    doc.add(Heading("Results"))
    doc.add(Table(pd.DataFrame([{"system": k, "tokens_per_s": round(v)} for k, v in tps.items()])))
    doc.add(metrics_table(metrics))
    doc.add(Heading("Baselines"))
    doc.add(
        Paragraph(
            "As the paper's repository README defines them: NPU-only runs every operation on the "
            "NPU; naive NPU+PIM runs the attention GEMVs on single-row-buffer (blocked-mode) PIM "
            "with no sub-batch interleaving; NeuPIMs adds dual row buffers and sub-batch "
            "interleaving (enabled there from batch 256); the paper's Sec. 8.1 adds that the "
            "NPU+PIM baseline assigns requests to channels round robin and that NPU-only has "
            "the same memory bandwidth. The NPU runs decode attention with the "
            "query rows stationary in the arrays and K/V streaming past them, the faster of its "
            "two mappings here, so it reads the KV cache at close to the DRAM bandwidth."
        )
    )
    doc.add(Heading("Gaps"))
    doc.add(
        Paragraph(
            "Per layer the model gives about 0.23 ms of NPU GEMMs for the whole batch (0.32 ms "
            "as two sub-batches beside PIM: each sub-batch re-reads the weights and the PIM "
            "commands take a third of the channels' column slots), 0.67 ms of NPU attention "
            "(0.63 GB of KV cache near the 1 TB/s DRAM bandwidth) and 0.20 ms of PIM attention "
            "in the busiest channel (0.25 ms in blocked mode: 0.10 ms of score GEMVs and 0.15 "
            "ms of context GEMVs, each phase waiting for its busiest channel, with round-robin "
            "channels). The gain over naive NPU+PIM lands on the paper. "
            "The gain over NPU-only stays high: with NeuPIMs bound "
            "by its NPU GEMMs, the paper's 2.4x would need NPU-only attention faster than the "
            "DRAM bandwidth allows, or NPU GEMMs about a quarter slower than the tiling model "
            "gives (it runs them at about 87% of the arrays' peak); the paper's NPU simulator "
            "figures are not available to check which; the point run here is one where the "
            "paper's own gains exceed its averages. The gain over GPU-only stays low: the paper "
            "finds GPU-only and NPU-only marginally apart (Sec. 8.2) and its 3.0x against 2.4x "
            "puts its measured PyTorch A100 below its NPU-only system, while archsim's kernel-"
            "level A100 40GB (1.56 TB/s, 312 TFLOP/s) runs this step about 15% faster than the "
            "NPU; the software overheads of the measured PyTorch run are not modelled. No "
            "constant was tuned to close a gap."
        )
    )
    return Reproduction(name="neupims", metrics=metrics, report=doc)
