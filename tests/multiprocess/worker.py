"""The worker side of :mod:`launcher`: join the job, count compiles, report.

Imported by a worker script before it uses any device. The job's address,
size and this process's id come from the launcher, through the environment.
"""

import collections
import json
import os

import jax

CPU_DEVICES_PER_PROCESS = 2
RESULT_PREFIX = "RESULT "
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def initialize() -> None:
    """Joins the job: 2 CPU devices here, coordinator on 127.0.0.1 only.

    The timeouts are short so that a job whose peer died or never came ends
    in seconds, not minutes.
    """
    jax.config.update("jax_num_cpu_devices", CPU_DEVICES_PER_PROCESS)
    address = os.environ["OPTAXSWAP_TEST_COORDINATOR"]
    jax.distributed.initialize(
        coordinator_address=address,
        num_processes=int(os.environ["OPTAXSWAP_TEST_NUM_PROCESSES"]),
        process_id=int(os.environ["OPTAXSWAP_TEST_PROCESS_ID"]),
        coordinator_bind_address=address,
        initialization_timeout=60,
        heartbeat_timeout_seconds=10,
        shutdown_timeout_seconds=30,
    )


def count_compiles() -> collections.Counter:
    """A counter of XLA compilations by function name, from now on."""
    counts: collections.Counter = collections.Counter()

    def listener(event: str, duration: float, **kwargs) -> None:
        del duration
        if event == BACKEND_COMPILE_EVENT:
            counts[kwargs.get("fun_name")] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    return counts


def report(**result) -> None:
    """One line of JSON that the test reads from this process's output."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)
