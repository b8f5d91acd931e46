"""A crew thread's training steps in one compiled loop: no Python, and no GIL, from one step to the next.

On two threads a training step hands one batch slice to a :class:`convprop.engine.parallel.Crew`
thread. Taking it through Python (the job, the ticket, the bound step's call of thirty-odd
arrays) took the crew thread 25 µs after the hand-over, with caches the last step had
cooled, and the calling thread waited for it before entering its own slice, so as not to
hold the GIL the crew thread needed. Here the crew thread stays in compiled code: it runs
its slice, publishes it, and waits (spinning, as :mod:`.spin` does) for the next step of
the same binding (``token``), whose slice it starts about 1 µs after the post.
"""

from __future__ import annotations

from ._jit import jit, load_acquire, store_release
from .spin import pause
from .stack import train


@jit
def serve(flags, slot, token, gen, lo, hi, losses, limit, x, y, rows, *step):
    """Train slice ``slot`` of job ``gen`` and of each next job posted with ``token``; the last job run.

    Parameters
    ----------
    flags : the crew's (8·(k + 1),) int64 flags: flags[0] the generation posted last, flags[1] its
        token (0: a job for Python); flags[8·slot] and flags[8·slot + 1] this slot's last finished
        generation and its parts done (stored here: 1 per job), flags[8·slot + 3] the generation
        being run (stored here)
    slot : int ≥ 1;  token : int > 0, the binding: these arrays and this slice
    gen : the generation of the first job (posted already);  lo, hi : the slice's rows of ``rows``
        (the bound step's batch size is hi − lo)
    losses : (k,) float64, out: losses[slot] the slice's loss
    limit : polls (each followed by a yield of the core) to wait for a next job before returning
    x, y, rows : :func:`.stack.train`'s (``rows``: the whole batch's, written before each post)
    step : the rest of :func:`.stack.train`'s arguments but the start signal (a bound step's)

    Returns
    -------
    The generation of the last job run: a newer one is posted with another token, or none came.
    """
    while True:
        store_release(flags, 8 * slot + 3, gen)  # the job being run: the one a failure belongs to
        losses[slot] = train(x, y, rows, lo, *step, flags, 8 * slot + 2, gen)  # rows[lo:hi]
        store_release(flags, 8 * slot + 1, 1)
        store_release(flags, 8 * slot, gen)  # done: after the count, which the caller reads after this
        posted = gen
        for _ in range(limit):
            posted = load_acquire(flags, 0)
            if posted > gen:
                break
            pause()
        if posted <= gen or load_acquire(flags, 1) != token:
            return gen
        gen = posted
