from pathlib import Path

import pytest

from archsim.config import load_machine, load_workload, machine_from_text
from archsim.dse.space import expand_grid
from archsim.errors import ConfigError

DATA = Path(__file__).parents[1] / "data"


def test_grid_is_the_product_of_both_sweep_blocks():
    machine = load_machine(DATA / "machines" / "tiny_fpga.yaml")
    workload = load_workload(DATA / "workloads" / "tiny_gemms.yaml")
    points = expand_grid(machine, workload)
    assert len(points) == 2 * 2 * 2
    seen = {
        (
            p.params["devices.fpga.dsp_count"],
            p.params["devices.fpga.clock"],
            p.params["workload.dtype"],
        )
        for p in points
    }
    assert len(seen) == 8
    for point in points:
        fpga = point.machine.devices[0]
        assert fpga.dsp_count == point.params["devices.fpga.dsp_count"]
        assert fpga.clock_hz in (200e6, 300e6)
        assert point.workload.workload.dtype.value == point.params["workload.dtype"]


def test_invalid_swept_value_names_the_sweep_key():
    text = (DATA / "machines" / "tiny_fpga.yaml").read_text()
    text = text.replace('["200 MHz", "300 MHz"]', '["200 MHz", "300 MB"]')
    machine = machine_from_text(text, "sweep.yaml")
    workload = load_workload(DATA / "workloads" / "tiny_gemms.yaml")
    with pytest.raises(ConfigError) as caught:
        expand_grid(machine, workload)
    message = str(caught.value)
    assert "sweep.yaml" in message and "300 MB" in message and "devices.0.clock" in message


def test_sweep_path_to_unknown_device_is_refused():
    text = (DATA / "machines" / "tiny_fpga.yaml").read_text()
    text = text.replace("devices.fpga.dsp_count", "devices.gpu.dsp_count")
    machine = machine_from_text(text, "sweep.yaml")
    workload = load_workload(DATA / "workloads" / "tiny_gemms.yaml")
    with pytest.raises(ConfigError, match=r"sweep\.devices\.gpu\.dsp_count"):
        expand_grid(machine, workload)


def test_sweep_path_to_unknown_field_is_refused():
    text = (DATA / "machines" / "tiny_fpga.yaml").read_text()
    text = text.replace("devices.fpga.dsp_count", "devices.fpga.dsp_cnt")
    machine = machine_from_text(text, "sweep.yaml")
    workload = load_workload(DATA / "workloads" / "tiny_gemms.yaml")
    with pytest.raises(ConfigError, match="dsp_cnt"):
        expand_grid(machine, workload)
