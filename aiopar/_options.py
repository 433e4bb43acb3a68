"""The options of a task: ``cancel``, ``retries`` and ``pool``, and Ray's others, refused.

``RemoteFunction.options(...)`` and ``@aiopar.remote(...)`` take them. Code brought
from Ray passes Ray's options: each one aiopar has no use for is refused with a
message naming it and the aiopar way to get what it was for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from ._pool_base import PoolBase

__all__ = ["TaskOptions"]

_PLACEMENT = (
    "aiopar has no placement: any worker of the pool runs any task; use a Pool of its own "
    "(aiopar.Pool(...), then .options(pool=that_pool)) for work that needs other workers"
)
_SIZING = (
    "aiopar runs one task at a time per worker process, and workers have no resources to "
    "claim; size the pool instead: aiopar.Pool(workers=n), then .options(pool=that_pool)"
)

#: Ray's options of a remote function that aiopar refuses, and what to do instead.
REFUSED: dict[str, str] = {
    "num_cpus": _SIZING,
    "num_gpus": _SIZING,
    "resources": _SIZING,
    "memory": _SIZING,
    "object_store_memory": _SIZING,
    "accelerator_type": _SIZING,
    "scheduling_strategy": _PLACEMENT,
    "placement_group": _PLACEMENT,
    "placement_group_bundle_index": _PLACEMENT,
    "placement_group_capture_child_tasks": _PLACEMENT,
    "label_selector": _PLACEMENT,
    "num_returns": (
        "a task has one result in aiopar; return a tuple and unpack it after awaiting "
        "the ref, or submit one task per result"
    ),
    "max_calls": (
        "to replace workers after a number of tasks, make the pool with "
        "aiopar.Pool(max_tasks_per_child=n), then .options(pool=that_pool)"
    ),
    "retry_exceptions": (
        "aiopar runs a task again only when its worker crashed (retries=n); to retry on "
        "exceptions raised by the function, catch them and loop in the function"
    ),
    "runtime_env": (
        "workers share this machine's environment; prepare each worker with "
        "aiopar.Pool(initializer=...) and reach what it made with aiopar.worker_state()"
    ),
    "name": "tasks are named after their function in aiopar's messages; no other name is kept",
    "namespace": "aiopar has no namespaces",
    "lifetime": "aiopar has no detached tasks: a task lives as long as its pool",
    "concurrency_groups": "aiopar has no actors; each task runs alone in its worker",
    "max_concurrency": "aiopar has no actors; each task runs alone in its worker",
    "enable_task_events": "aiopar keeps no task events",
    "_metadata": "aiopar keeps no task metadata",
}


@dataclass(frozen=True)
class TaskOptions:
    """What ``.options(...)`` set; None leaves the pool's choice."""

    pool: PoolBase | None = None
    cancel: Literal["wait", "kill"] | None = None
    retries: int | None = None

    def merged(self, options: dict[str, Any]) -> TaskOptions:
        """These options updated with ``options`` (keyword arguments), checked.

        Raises:
            TypeError: for an option aiopar does not have, naming the aiopar way.
            ValueError: for a bad value, naming the option.
        """
        from ._pool_base import PoolBase

        changes: dict[str, Any] = {}
        for name, value in options.items():
            if name in REFUSED:
                raise TypeError(f"Ray's option {name}= is not supported by aiopar: {REFUSED[name]}")
            if name == "pool":
                if value is not None and not isinstance(value, PoolBase):
                    raise TypeError(
                        f"pool must be an aiopar.Pool or None, got {type(value).__name__}"
                    )
                changes["pool"] = value
            elif name == "cancel":
                if value not in (None, "wait", "kill"):
                    raise ValueError(
                        f'cancel must be "wait", "kill" or None (the pool\'s choice), got {value!r}'
                    )
                changes["cancel"] = value
            elif name in ("retries", "max_retries"):
                changes["retries"] = _check_retries(name, value)
            else:
                raise TypeError(
                    f"unknown option {name}=; the options of a task are pool=, cancel= "
                    "and retries= (max_retries= is Ray's name for retries=)"
                )
        return replace(self, **changes)


def _check_retries(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= 0 or None, got {value!r}")
    if value == -1 and name == "max_retries":
        raise ValueError(
            "max_retries=-1 (retry forever) is not supported: give the number of times "
            "a task whose worker crashed runs again, say max_retries=3"
        )
    if value < 0:
        raise ValueError(f"{name} must be an int >= 0 or None, got {value!r}")
    return value
