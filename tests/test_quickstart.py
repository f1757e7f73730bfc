"""The README's example and the quickstart script run and do what they say."""

import os
import pathlib
import re
import subprocess
import sys

import optaxswap as osw

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_quickstart_prints_its_resets_and_the_switch():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert re.search(r"step \d+: reset Adam's moments \(reset 1\)", output), output
    assert re.search(r"step \d+: .*switched to SGD with momentum \(phase 1\)", output)
    assert "final phase 1" in output
    assert "train step compiled 1 time(s)" in output


def test_readme_example_switches_to_sgd_inside_one_compiled_step(capsys):
    example = re.search(r"```python\n(.*?)```", README, re.DOTALL).group(1)
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert int(osw.phase(namespace["opt_state"])) == 1
    assert namespace["train_step"]._cache_size() == 1
    assert "phase: 1" in capsys.readouterr().out


def test_readme_gives_the_commands_that_run_the_main_job_and_the_tests():
    venv = "python3 -m venv .venv && . .venv/bin/activate && pip install -e "
    commands = [line for line in README.splitlines() if line.startswith(venv)]
    test_command = f'{venv}".[test]" && python -m pytest'
    assert test_command in commands
    assert any(command != test_command for command in commands), commands
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("python -m pytest")
