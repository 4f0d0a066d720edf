"""HBM generations: organisation of one (pseudo-)channel and its main timings.

Core timings are given in ns (they are set by the DRAM array and barely move between
generations); column-to-column spacings are given in clock cycles, as the standards state them.
The controller clock is half the pin data rate (double data rate), so one burst of ``BL`` beats
takes ``BL / 2`` cycles.

Sources
-------
[JESD235A] JEDEC JESD235A, High Bandwidth Memory (HBM) DRAM, 2015 (HBM2: 2 Gb/s per pin,
    8 x 128-bit channels per stack, BL4, 4 bank groups).
[JESD235C] JEDEC JESD235C, 2020 (HBM2E: up to 3.2 Gb/s per pin, same organisation).
[JESD238] JEDEC JESD238, High Bandwidth Memory (HBM3) DRAM, 2022 (6.4 Gb/s per pin, 16 x 64-bit
    channels as 32 x 32-bit pseudo-channels, BL8).
[NeuPIMs-ini] casys-kaist/NeuPIMs, extern/NewtonSim/configs/HBM2_8Gb_x128_dualpim.ini (the HBM2
    timings NeuPIMs simulates at tCK = 1 ns: CL 14, tRCD 14, tRP 14, tRAS 34, tRRD_S 4, tRRD_L 6,
    tFAW 30, tCCD_S 1, tCCD_L 2, tRTP_L 6, tREFI 3900, tRFC 260; 4 bank groups x 4 banks; 64
    columns of 128 bits = 1 KiB rows).
"""

from __future__ import annotations

from dataclasses import dataclass

from archsim.errors import ArchsimError


@dataclass(frozen=True)
class DramStandard:
    """One HBM (pseudo-)channel: organisation and timings.

    Attributes
    ----------
    name:
        Standard name (``hbm2``, ``hbm2e``, ``hbm3``, ``hbm3_h100``).
    data_rate_bits_per_s:
        Data rate of one pin, bit/s.
    bus_width_bits:
        Data pins of one (pseudo-)channel.
    channels_per_stack:
        (Pseudo-)channels of one stack.
    burst_length:
        Beats of one access.
    banks, banks_per_group:
        Banks of one (pseudo-)channel and banks per bank group.
    row_bytes:
        Bytes of one row (page) of one bank.
    t_rcd_s, t_rp_s, t_ras_s, t_cl_s, t_rrd_s_s, t_rrd_l_s, t_faw_s, t_rtp_s, t_refi_s, t_rfc_s:
        Core timings in seconds.
    t_ccd_s_cycles, t_ccd_l_cycles:
        Column-to-column spacing, other / same bank group, in cycles.
    """

    name: str
    data_rate_bits_per_s: float
    bus_width_bits: int
    channels_per_stack: int
    burst_length: int
    banks: int
    banks_per_group: int
    row_bytes: int
    t_rcd_s: float
    t_rp_s: float
    t_ras_s: float
    t_cl_s: float
    t_rrd_s_s: float
    t_rrd_l_s: float
    t_faw_s: float
    t_rtp_s: float
    t_refi_s: float
    t_rfc_s: float
    t_ccd_s_cycles: int
    t_ccd_l_cycles: int

    @property
    def clock_hz(self) -> float:
        """Controller clock: half the pin data rate (DDR)."""
        return self.data_rate_bits_per_s / 2.0

    @property
    def burst_bytes(self) -> int:
        return self.bus_width_bits * self.burst_length // 8

    @property
    def burst_cycles(self) -> float:
        return self.burst_length / 2.0

    @property
    def channel_peak_bw_bytes_per_s(self) -> float:
        return self.bus_width_bits * self.data_rate_bits_per_s / 8.0

    @property
    def stack_peak_bw_bytes_per_s(self) -> float:
        return self.channel_peak_bw_bytes_per_s * self.channels_per_stack

    def cycles(self, seconds: float) -> float:
        """A timing in whole controller cycles (rounded up, as controllers do)."""
        exact = seconds * self.clock_hz
        return float(-(-round(exact * 1e6) // 1_000_000))


# HBM2 at 2 Gb/s [JESD235A]; timings as NeuPIMs simulates them [NeuPIMs-ini] (tCK = 1 ns)
HBM2 = DramStandard(
    name="hbm2",
    data_rate_bits_per_s=2.0e9,
    bus_width_bits=128,
    channels_per_stack=8,
    burst_length=4,
    banks=16,
    banks_per_group=4,
    row_bytes=1024,
    t_rcd_s=14e-9,
    t_rp_s=14e-9,
    t_ras_s=34e-9,
    t_cl_s=14e-9,
    t_rrd_s_s=4e-9,
    t_rrd_l_s=6e-9,
    t_faw_s=30e-9,
    t_rtp_s=6e-9,
    t_refi_s=3.9e-6,
    t_rfc_s=260e-9,
    t_ccd_s_cycles=1,
    t_ccd_l_cycles=2,
)

# HBM2E at 3.2 Gb/s [JESD235C]; same organisation; the core timings of HBM2 in ns are kept
# (assumption: the array timings move little between the two), so more of them show in cycles
HBM2E = DramStandard(
    name="hbm2e",
    data_rate_bits_per_s=3.2e9,
    bus_width_bits=128,
    channels_per_stack=8,
    burst_length=4,
    banks=16,
    banks_per_group=4,
    row_bytes=1024,
    t_rcd_s=14e-9,
    t_rp_s=14e-9,
    t_ras_s=34e-9,
    t_cl_s=14e-9,
    t_rrd_s_s=4e-9,
    t_rrd_l_s=6e-9,
    t_faw_s=30e-9,
    t_rtp_s=6e-9,
    t_refi_s=3.9e-6,
    t_rfc_s=260e-9,
    t_ccd_s_cycles=2,
    t_ccd_l_cycles=4,
)

# HBM3 at 6.4 Gb/s, 32 pseudo-channels of 32 bits, BL8 [JESD238]; 4 bank groups x 4 banks per
# pseudo-channel and 1 KiB rows; core timings in ns as HBM2 except tRFC 350 ns for the 16 Gb
# dies (assumption: the refresh cycle grows with die capacity as in DDR4/DDR5); tCCD_L 6 cycles
# (assumption: about 2 ns, longer than the 4-cycle burst, as in DDR5)
HBM3 = DramStandard(
    name="hbm3",
    data_rate_bits_per_s=6.4e9,
    bus_width_bits=32,
    channels_per_stack=32,
    burst_length=8,
    banks=16,
    banks_per_group=4,
    row_bytes=1024,
    t_rcd_s=14e-9,
    t_rp_s=14e-9,
    t_ras_s=34e-9,
    t_cl_s=14e-9,
    t_rrd_s_s=4e-9,
    t_rrd_l_s=6e-9,
    t_faw_s=30e-9,
    t_rtp_s=6e-9,
    t_refi_s=3.9e-6,
    t_rfc_s=350e-9,
    t_ccd_s_cycles=4,
    t_ccd_l_cycles=6,
)

# HBM3 as the H100 SXM5 runs it: 3.35 TB/s over 5 stacks of 1024 pins is 5.23 Gb/s a pin (H100
# datasheet); tCCD_S 1.5 ns, the spacing Duplex's Logic-PIM units are clocked for, and tCCD_L
# twice that ([Duplex] Yun et al., MICRO 2024, Sec. 6 and Sec. 4.2); the other timings as HBM3
HBM3_H100 = DramStandard(
    name="hbm3_h100",
    data_rate_bits_per_s=5.234e9,
    bus_width_bits=32,
    channels_per_stack=32,
    burst_length=8,
    banks=16,
    banks_per_group=4,
    row_bytes=1024,
    t_rcd_s=14e-9,
    t_rp_s=14e-9,
    t_ras_s=34e-9,
    t_cl_s=14e-9,
    t_rrd_s_s=4e-9,
    t_rrd_l_s=6e-9,
    t_faw_s=30e-9,
    t_rtp_s=6e-9,
    t_refi_s=3.9e-6,
    t_rfc_s=350e-9,
    t_ccd_s_cycles=4,
    t_ccd_l_cycles=8,
)

STANDARDS: dict[str, DramStandard] = {s.name: s for s in (HBM2, HBM2E, HBM3, HBM3_H100)}


def get_standard(name: str) -> DramStandard:
    """The standard called ``name``; raises with the known names otherwise."""
    if name not in STANDARDS:
        raise ArchsimError(
            f"unknown DRAM standard '{name}' (known: {', '.join(sorted(STANDARDS))})"
        )
    return STANDARDS[name]
