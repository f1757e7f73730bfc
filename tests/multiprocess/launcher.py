"""Runs a script as a real multi-process ``jax.distributed`` job on this machine.

The parent side: :func:`run_job` starts one worker process per process id,
each in its own process group, and waits for all of them under one hard
deadline, after which it kills every worker's group. The worker side is
:mod:`worker`, which the script imports to join the job.
"""

from collections.abc import Sequence
import dataclasses
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

# The coordinator can lose its port to another program between the moment a
# free one is found and the moment it binds it; the job is then started anew.
PORT_TAKEN = "Failed to start RPC server"
ATTEMPTS = 3


@dataclasses.dataclass(frozen=True)
class Finished:
    """How one worker process ended."""

    process_id: int
    returncode: int
    stdout: str
    stderr: str
    seconds: float  # From the job's start to this process's exit.

    def lines(self, prefix: str) -> list[str]:
        return [
            line.removeprefix(prefix)
            for line in self.stdout.splitlines()
            if line.startswith(prefix)
        ]


class JobTimeoutError(AssertionError):
    """The job outlived its deadline; every worker was killed."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_job(
    script: pathlib.Path,
    args: Sequence[str],
    *,
    workdir: pathlib.Path,
    num_processes: int = 2,
    timeout: float = 120.0,
) -> list[Finished]:
    """Runs ``python script *args`` as process 0 .. num_processes - 1 of one job.

    Each worker finds the coordinator's address, the number of processes and
    its id in its environment (see :mod:`worker`). Output goes to files under
    ``workdir``, so a chatty worker can never block on a full pipe.

    Raises:
      JobTimeoutError: if the workers are not all done within ``timeout`` seconds.
    """
    for attempt in range(ATTEMPTS):
        finished = _run_once(
            script, args, workdir / f"attempt{attempt}", num_processes, timeout
        )
        if not any(PORT_TAKEN in process.stderr for process in finished):
            return finished
    return finished


def _run_once(
    script: pathlib.Path,
    args: Sequence[str],
    workdir: pathlib.Path,
    num_processes: int,
    timeout: float,
) -> list[Finished]:
    workdir.mkdir(parents=True)
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    processes = []
    for process_id in range(num_processes):
        environment = {
            **os.environ,
            "JAX_PLATFORMS": "cpu",
            "OPTAXSWAP_TEST_COORDINATOR": address,
            "OPTAXSWAP_TEST_NUM_PROCESSES": str(num_processes),
            "OPTAXSWAP_TEST_PROCESS_ID": str(process_id),
        }
        environment.pop("XLA_FLAGS", None)
        stdout = open(workdir / f"process{process_id}.out", "w")  # noqa: SIM115
        stderr = open(workdir / f"process{process_id}.err", "w")  # noqa: SIM115
        processes.append(
            subprocess.Popen(
                [sys.executable, str(script), *args],
                stdout=stdout,
                stderr=stderr,
                env=environment,
                start_new_session=True,  # Its own process group, to kill it whole.
            )
        )
        stdout.close()
        stderr.close()
    exit_seconds: dict[int, float] = {}
    try:
        while len(exit_seconds) < num_processes:
            if time.monotonic() - started > timeout:
                raise JobTimeoutError(
                    f"the job ran past {timeout} s; killed it:\n"
                    + _outputs(workdir, num_processes)
                )
            for process_id, process in enumerate(processes):
                if process_id not in exit_seconds and process.poll() is not None:
                    exit_seconds[process_id] = time.monotonic() - started
            time.sleep(0.05)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return [
        Finished(
            process_id=process_id,
            returncode=process.returncode,
            stdout=(workdir / f"process{process_id}.out").read_text(),
            stderr=(workdir / f"process{process_id}.err").read_text(),
            seconds=exit_seconds[process_id],
        )
        for process_id, process in enumerate(processes)
    ]


def _outputs(workdir: pathlib.Path, num_processes: int) -> str:
    return "\n".join(
        f"--- process {process_id} {stream}:\n"
        + (workdir / f"process{process_id}.{stream}").read_text()[-3000:]
        for process_id in range(num_processes)
        for stream in ("out", "err")
    )
