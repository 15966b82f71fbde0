"""The CPU plan (bus/cpus.py): engine thread counts from the cores a stage may use, and
the OpenMP wait policy set before the engine loads. The rule in-process, then a real
model stage that starts with it."""

import json
import os

import pytest
from conftest import LoneStage

from bus import config as configuration
from bus import cpus


@pytest.mark.parametrize(
    ("cores", "asr", "model"),
    [(1, 1, 1), (2, 2, 1), (4, 4, 2), (5, 5, 2), (8, 8, 4)],
)
def test_recognition_takes_every_core_and_a_model_half(cores, asr, model):
    assert cpus.engine_threads("asr", cores) == cpus.EngineThreads(asr, asr)
    for stage in cpus.GENERATORS:  # a prompt is evaluated on every core
        assert cpus.engine_threads(stage, cores) == cpus.EngineThreads(model, cores)


def test_threads_set_in_the_settings_win():
    assert cpus.engine_threads("instruct", 4, threads=3) == cpus.EngineThreads(3, 4)
    assert cpus.engine_threads("instruct", 4, batch=1) == cpus.EngineThreads(2, 1)
    assert cpus.for_stage("thinking", {"threads": 0, "batch_threads": 0, "cpus": [0, 1, 2, 3]}) == (
        cpus.EngineThreads(2, 4)
    )
    assert cpus.for_stage("asr", {"cpus": [0]}).threads == 1


def test_a_wait_policy_is_given_to_openmp_and_one_it_lacks_is_a_config_error(monkeypatch):
    assert cpus.wait_environment("passive") == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert cpus.wait_environment("default") == {}
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    cpus.apply_wait_policy("passive")
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"  # the user's own export wins
    with pytest.raises(configuration.ConfigError, match=r"stages\.asr\.wait must be one of passive, active, default"):
        configuration.load(overrides=['stages.asr.wait="spin"'])


def test_a_model_stage_loads_its_engine_with_the_plan():
    stage = LoneStage("instruct", ["router"])
    logged = stage.close()
    [starting] = [json.loads(line) for line in logged.splitlines() if '"starting"' in line]
    cores = len(os.sched_getaffinity(0))
    assert (starting["threads"], starting["batch_threads"], starting["wait"]) == (max(1, cores // 2), cores, "PASSIVE")
