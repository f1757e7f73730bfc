"""``optaxswap demo``: one quick run end to end, and the command line's errors."""

import importlib.metadata
import json
import math
import os
import struct
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optaxswap import _cli
from optaxswap._demo import PINN_PLOT_NAME
from optaxswap._demo import PINN_QUICK_STEPS
from optaxswap._demo import PINN_RESULTS_NAME
from optaxswap._demo import PINN_STRATEGIES
from optaxswap._demo import PLOT_NAME
from optaxswap._demo import QUICK_STEPS
from optaxswap._demo import RESULTS_NAME
from optaxswap._demo import STRATEGIES
from optaxswap._demo import DemoConfig
from optaxswap._demo import PinnConfig
from optaxswap._demo import _model
from optaxswap._demo import _pinn_problem
from optaxswap._demo._training import count_compilations


def run_quick_demo(problem, out, results_name):
    """``optaxswap demo --quick --problem PROBLEM``: its stdout and results."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "optaxswap",
            "demo",
            "--quick",
            "--problem",
            problem,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        # The tables are laid out to fit a standard 80-column terminal.
        env={**os.environ, "COLUMNS": "80"},
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout, json.loads((out / results_name).read_text())


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "nested" / "out"
    stdout, results = run_quick_demo("digits", out, RESULTS_NAME)
    return stdout, out, results


def _by_name(results):
    return {strategy["name"]: strategy for strategy in results["strategies"]}


def test_quick_demo_prints_each_strategys_metrics_and_compilations(quick_run):
    stdout, _, results = quick_run
    rows = {}
    for line in stdout.splitlines():
        if line.split() and line.split()[0] in STRATEGIES:
            rows.setdefault(line.split()[0], []).append(line.split())
    for name, strategy in _by_name(results).items():
        final = strategy["final"]
        # A metrics row, then a run row, with the numbers of results.json.
        metrics_row, run_row = rows[name][-2:]
        assert metrics_row[1:] == [
            f"{final['train_loss']:.4f}",
            f"{final['train_accuracy']:.1%}",
            f"{final['validation_loss']:.4f}",
            f"{final['validation_accuracy']:.1%}",
            f"{final['test_loss']:.4f}",
            f"{final['test_accuracy']:.1%}",
        ]
        assert run_row[-2:] == [
            f"{strategy['wall_seconds']:.1f}",
            str(strategy["compilations"]),
        ]
        events = ", ".join(map(str, strategy["event_steps"])) or (
            "-" if strategy["event_kind"] == "none" else "none"
        )
        assert " ".join(run_row[1:-2]) == events


def test_quick_demo_runs_every_strategy_with_one_compilation_each(quick_run):
    _, _, results = quick_run
    strategies = _by_name(results)
    assert list(strategies) == list(STRATEGIES)
    for strategy in strategies.values():
        assert strategy["compilations"] == 1, strategy["name"]
        assert strategy["compile_seconds"] > 0


def test_quick_demo_trains_every_strategy_to_a_useful_classifier(quick_run):
    _, _, results = quick_run
    for strategy in results["strategies"]:
        final = strategy["final"]
        assert all(math.isfinite(value) for value in final.values())
        # Ten balanced classes: chance is 10%; every optimizer here gets far.
        assert final["test_accuracy"] > 0.9, strategy["name"]
        curves = strategy["curves"]
        assert curves["step"][0] == 0 and curves["step"][-1] == QUICK_STEPS
        assert {len(values) for values in curves.values()} == {len(curves["step"])}
        assert curves["train_loss"][-1] < curves["train_loss"][0]


def test_quick_demo_switches_and_resets_at_the_configured_steps(quick_run):
    _, _, results = quick_run
    config = DemoConfig(steps=QUICK_STEPS)
    strategies = _by_name(results)
    assert strategies["switch_at"]["event_steps"] == [config.switch_step]
    assert strategies["resettable"]["event_steps"] == list(
        range(config.reset_every, QUICK_STEPS, config.reset_every)
    )
    assert strategies["adam"]["event_steps"] == []
    assert results["config"]["steps"] == QUICK_STEPS


def test_quick_demo_plateau_switch_follows_the_validation_curve(quick_run):
    _, _, results = quick_run
    strategy = _by_name(results)["switch_on_plateau"]
    config = results["config"]
    curves = strategy["curves"]
    # An independent replay of the plateau rule (mode="min", atol=0) over the
    # validation losses the demo observed, one per evaluation after step 0.
    best, bad_count, expected = math.inf, 0, None
    for step, loss in zip(curves["step"][1:], curves["validation_loss"][1:]):
        if loss < best - 1e-4 * abs(best) or math.isinf(best):
            best, bad_count = loss, 0
        else:
            bad_count += 1
        if bad_count >= config["patience"]:
            expected = step  # the next update, number `step`, switches
            break
    assert expected is not None, "the quick run should reach a plateau"
    assert strategy["event_steps"] == [expected]


def test_quick_demo_saves_the_summary_of_each_final_state(quick_run):
    _, _, results = quick_run

    def values(summary, field):
        return [v for k, v in summary.items() if k.split("/")[-1] == field]

    for strategy in results["strategies"]:
        summary = strategy["state_summary"]
        if strategy["event_kind"] == "none":
            continue
        # Every combinator counts the updates it performed.
        assert values(summary, "count") == [QUICK_STEPS], summary
        events = len(strategy["event_steps"])
        field = "phase" if strategy["event_kind"] == "switches" else "resets"
        assert values(summary, field) == [events], summary
    plateau = _by_name(results)["switch_on_plateau"]
    # The best validation loss by the plateau rule (rtol=1e-4), replayed.
    best = math.inf
    for loss in plateau["curves"]["validation_loss"][1:]:
        if math.isinf(best) or loss < best - 1e-4 * abs(best):
            best = loss
    assert values(plateau["state_summary"], "best") == [best]


def test_quick_demo_writes_a_readable_png(quick_run):
    _, out, _ = quick_run
    data = (out / PLOT_NAME).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800 and height >= 400


def test_compilation_counter_counts_every_recompile():
    def scaled(x, factor):
        return x * factor

    jitted = jax.jit(scaled)
    with count_compilations("scaled") as compilations:
        jitted(jnp.ones(2), 2.0)
        jitted(jnp.ones(2), 3.0)
        jitted(jnp.ones(2, jnp.int32), 2)
    assert compilations.count == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demo", "--steps", "0"], "--steps"),
        (["demo", "--steps", "many"], "--steps"),
        (["demo", "--seed", "-1"], "--seed"),
        (["demo", "--strategies", "adam,lion"], "'lion'"),
        (["demo", "--strategies", "adam,adam"], "twice"),
        (["demo", "--strategies", ","], "--strategies"),
        (["demo", "--frobnicate"], "--frobnicate"),
        (["demo", "--problem", "burgers"], "--problem"),
        (["demo", "--problem", "pinn", "--strategies", "sgd"], "'sgd'"),
        (["demo", "--problem", "digits", "--strategies", "rejit"], "'rejit'"),
        (["demo", "--strategies", "rejit"], "no digits strategy"),
        ([], "COMMAND"),
    ],
)
def test_bad_options_exit_non_zero_with_a_message(argv, message, capsys):
    assert _cli.main(argv) == 2
    error = capsys.readouterr().err
    assert message in error
    assert "Traceback" not in error


def test_out_that_is_a_file_exits_non_zero_with_a_message(tmp_path, capsys):
    not_a_folder = tmp_path / "results.txt"
    not_a_folder.write_text("")
    assert _cli.main(["demo", "--quick", "--out", str(not_a_folder)]) != 0
    assert "not a folder" in capsys.readouterr().err


def test_command_line_error_has_no_traceback():
    completed = subprocess.run(
        [sys.executable, "-m", "optaxswap", "demo", "--steps", "-5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert "--steps" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_importing_optaxswap_leaves_the_demo_extras_unimported():
    code = (
        "import sys, optaxswap, optaxswap._cli;"
        "print([m for m in ('sklearn', 'matplotlib', 'rich') if m in sys.modules])"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_installed_console_script_runs_the_command_line():
    scripts = importlib.metadata.entry_points(group="console_scripts")
    (script,) = [entry for entry in scripts if entry.name == "optaxswap"]
    assert script.load() is _cli.main


def test_quick_demo_piped_output_keeps_each_line_whole(quick_run):
    stdout, out, _ = quick_run
    wrote = f"Wrote {out / PLOT_NAME} and {out / RESULTS_NAME}"
    assert len(wrote) > 80
    assert wrote in stdout.splitlines()


@pytest.fixture(scope="module")
def quick_pinn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pinn")
    stdout, results = run_quick_demo("pinn", out, PINN_RESULTS_NAME)
    return stdout, out, results


def test_quick_pinn_writes_every_field_of_every_strategy(quick_pinn_run):
    _, out, results = quick_pinn_run
    assert set(results) >= {"problem", "config", "environment", "solution_x"}
    assert results["config"]["steps"] == PINN_QUICK_STEPS
    strategies = _by_name(results)
    assert list(strategies) == list(PINN_STRATEGIES)
    for strategy in strategies.values():
        assert set(strategy["final"]) == {
            "train_residual",
            "validation_residual",
            "l2_error",
        }
        assert all(math.isfinite(value) for value in strategy["final"].values())
        curves = strategy["curves"]
        assert len(curves["update_loss"]) == PINN_QUICK_STEPS
        assert curves["step"][0] == 0 and curves["step"][-1] == PINN_QUICK_STEPS
        assert len(strategy["solution"]) == len(results["solution_x"])
        for key in ("wall_seconds", "compile_seconds", "compile_seconds_mid_run"):
            assert strategy[key] >= 0
    data = (out / PINN_PLOT_NAME).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_pinn_switches_to_lbfgs_at_the_configured_step(quick_pinn_run):
    _, _, results = quick_pinn_run
    strategies = _by_name(results)
    switch_step = PinnConfig(steps=PINN_QUICK_STEPS).switch_step
    assert strategies["switch_at"]["switch_steps"] == [switch_step]
    assert strategies["rejit"]["switch_steps"] == [switch_step]
    assert strategies["adam"]["switch_steps"] == []


def test_quick_pinn_plateau_switch_follows_the_training_loss(quick_pinn_run):
    _, _, results = quick_pinn_run
    config = results["config"]
    losses = _by_name(results)["switch_on_plateau"]["curves"]["update_loss"]
    # An independent replay of the plateau rule (mode="min", atol=0) over the
    # training losses given as value=, averaged over plateau_window updates.
    window = config["plateau_window"]
    best, bad_count, expected = math.inf, 0, None
    for end in range(window, len(losses) + 1, window):
        mean = sum(losses[end - window : end]) / window
        if math.isinf(best) or mean < best - config["plateau_rtol"] * abs(best):
            best, bad_count = mean, 0
        else:
            bad_count += 1
        if bad_count >= config["plateau_patience"]:
            expected = end - 1  # the update that completed the window switches
            break
    assert expected is not None, "the quick run should reach a plateau"
    assert _by_name(results)["switch_on_plateau"]["switch_steps"] == [expected]


def test_quick_pinn_train_step_compiles_once_with_optaxswap(quick_pinn_run):
    _, _, results = quick_pinn_run
    strategies = _by_name(results)
    for name in ("adam", "switch_at", "switch_on_plateau"):
        assert strategies[name]["compilations"] == 1, name
        assert strategies[name]["compile_seconds_mid_run"] == 0, name
    # Without optaxswap: Adam's step, then L-BFGS's, compiled mid-run.
    assert strategies["rejit"]["compilations"] >= 2
    assert strategies["rejit"]["compile_seconds_mid_run"] > 0


def test_quick_pinn_switch_at_runs_adam_as_bare_optax_does(quick_pinn_run):
    _, _, results = quick_pinn_run
    strategies = _by_name(results)
    # optaxswap's Adam phase against bare optax.adam from the same network:
    # equal to float32 round-off over the smooth start of the run (Adam's
    # first loss spike, near update 300, amplifies round-off).
    np.testing.assert_allclose(
        strategies["switch_at"]["curves"]["update_loss"][:200],
        strategies["adam"]["curves"]["update_loss"][:200],
        rtol=1e-5,
    )
    assert (
        strategies["rejit"]["curves"]["update_loss"][:200]
        == strategies["adam"]["curves"]["update_loss"][:200]
    )


def test_quick_pinn_lbfgs_after_adam_beats_adam_alone(quick_pinn_run):
    _, _, results = quick_pinn_run
    final = {name: s["final"] for name, s in _by_name(results).items()}
    # The residual only: in the short run, switch_at's L2 error is not lower.
    for name in ("switch_at", "switch_on_plateau"):
        assert final[name]["train_residual"] < final["adam"]["train_residual"] / 10


def test_exact_solution_has_no_poisson_residual():
    points = jnp.linspace(0.0, 1.0, 101)
    residual = _pinn_problem.poisson_residual(_pinn_problem.exact_solution, points)
    scale = float(jnp.abs(_pinn_problem.forcing(points)).max())
    assert float(jnp.abs(residual).max()) < 1e-5 * scale


def test_zero_network_scores_a_residual_loss_of_one():
    params = _model.init_mlp(jax.random.key(0), (1, 8, 1))
    zero = jax.tree.map(jnp.zeros_like, params)
    points = _pinn_problem.collocation_points(32)
    assert float(_pinn_problem.residual_loss(zero, points)) == pytest.approx(1.0)


def test_network_second_derivative_matches_finite_differences():
    params = _model.init_mlp(jax.random.key(1), (1, 16, 1))
    weights = {name: np.asarray(p, np.float64) for name, p in params.items()}

    def u(x):  # the same network, written out in float64 NumPy
        hidden = np.tanh(x[:, None] * weights["w0"] + weights["b0"])
        return x * (1 - x) * (hidden @ weights["w1"] + weights["b1"])[:, 0]

    x, h = np.linspace(0.1, 0.9, 9), 1e-3
    finite_difference = (u(x + h) - 2 * u(x) + u(x - h)) / h**2
    second = jax.vmap(
        lambda point: _pinn_problem.second_derivative(
            lambda y: _pinn_problem.network_solution(params, y), point
        )
    )(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(second, finite_difference, rtol=1e-3, atol=1e-3)
