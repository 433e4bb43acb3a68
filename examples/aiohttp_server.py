"""An aiohttp service that stays responsive while CPU-heavy requests use every core.

``GET /score`` runs a CPU-bound numpy simulation over ``n`` starting points. Done in the
handler itself, it would block the event loop for its whole duration, and every other
request (``/health`` included) would wait behind it. Here the handler hands the array to
``aiopar.amap_chunks``, which cuts it into pieces and runs them in worker processes; the
handler just awaits, and the loop keeps serving other requests meanwhile.

The process pool belongs to the application: a cleanup context opens it when the app
starts (``async with aiopar.Pool(...)``) and closes it, shutting the workers down, when
the app stops. The handlers reach it as ``request.app[POOL]``.

The functions that run in the workers (``simulate``) are at module level, so the workers
can import them (or receive them by value, see ``tests/test_examples.py``).

Run::

    python examples/aiohttp_server.py --port 8080
    curl 'http://localhost:8080/score?n=1000000&steps=1000&seed=0'
    curl 'http://localhost:8080/health'

Cancellation: by default aiohttp lets a handler finish when its client goes away. Start
the app with ``web.run_app(..., handler_cancellation=True)`` to cancel it instead; the
awaited ``amap_chunks`` is then cancelled too, and pieces that have not started never
run.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import AsyncIterator

import numpy as np
from aiohttp import web

import aiopar

R = 3.7  # parameter of the logistic map x -> R x (1 - x), chaotic at this value
MAX_N = 5_000_000
MAX_STEPS = 100_000

POOL = web.AppKey("pool", aiopar.Pool)


# --- CPU work: module level, runs in the worker processes --------------------------------


def make_inputs(n: int, seed: int) -> np.ndarray:
    """``n`` starting points in (0, 1), reproducible from ``seed``."""
    return np.random.default_rng(seed).uniform(0.01, 0.99, size=n)


def simulate(x0: np.ndarray, steps: int) -> np.ndarray:
    """Iterate the logistic map ``steps`` times from every starting point in ``x0``.

    CPU-bound: about half a millisecond per step and million points. Only ``-`` and
    ``*`` are used, so each point's result is bitwise the same whichever piece of the
    array it is computed in, and a chunked run equals ``simulate(x0, steps)`` in one
    piece.
    """
    x = np.array(x0, dtype=np.float64)  # a private copy: x0 may be read-only shared memory
    one_minus_x = np.empty_like(x)
    for _ in range(steps):
        np.subtract(1.0, x, out=one_minus_x)
        x *= R
        x *= one_minus_x
    return x


# --- handlers ------------------------------------------------------------------------------


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name} must be in [{low}, {high}], got {value}")
    return value


async def score(request: web.Request) -> web.Response:
    """``GET /score?n=&steps=&seed=``: simulate ``n`` points for ``steps`` steps.

    Answers ``{"n", "steps", "seed", "mean", "head"}``: the mean of the final points and
    the first five of them.
    """
    n = _int_param(request, "n", 1_000_000, 1, MAX_N)
    steps = _int_param(request, "steps", 1_000, 0, MAX_STEPS)
    seed = _int_param(request, "seed", 0, 0, 2**32 - 1)

    x0 = make_inputs(n, seed)  # cheap: tens of milliseconds at most
    final = await aiopar.amap_chunks(
        functools.partial(simulate, steps=steps), x0, pool=request.app[POOL]
    )
    return web.json_response(
        {
            "n": n,
            "steps": steps,
            "seed": seed,
            "mean": float(final.mean()),
            "head": final[:5].tolist(),
        }
    )


async def health(request: web.Request) -> web.Response:
    """``GET /health``: answers at once, even while ``/score`` requests are running."""
    return web.json_response({"status": "ok"})


# --- the application -------------------------------------------------------------------------


def create_app(*, workers: int | None = None) -> web.Application:
    """Build the app; its process pool (``workers`` processes) lives as long as the app."""

    async def process_pool(app: web.Application) -> AsyncIterator[None]:
        async with aiopar.Pool(workers=workers) as pool:
            app[POOL] = pool
            yield  # the app serves requests here; leaving the block shuts the workers down

    app = web.Application()
    app.cleanup_ctx.append(process_pool)
    app.router.add_get("/score", score)
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    args = parser.parse_args()
    web.run_app(create_app(workers=args.workers), host=args.host, port=args.port)
