"""Interrupted training loses nothing: SIGKILL at random moments, Ctrl-C, resume bit for bit.

A training process is killed with SIGKILL (no handler, no clean-up: the harshest crash short of
power loss) at random moments, many times in a row, each new run resuming from the checkpoint
the killed one left. After every kill the checkpoint must load, and must never go back in time;
at the end, the resumed run must equal an uninterrupted one bit for bit. Children are forked
from the test process (no interpreter start-up per kill), so the kills are cheap and land during
training and checkpoint writes alike (the tiny net writes a checkpoint every few milliseconds).
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np
import pytest

from convprop import Conv, Input, Network, Subsample

if not hasattr(os, "fork"):
    pytest.skip("the kill tests fork trainers (POSIX only)", allow_module_level=True)
import convprop as session  # fit, Diverged, Interrupted
from convprop.formats.checkpoint import load_checkpoint  # noqa: E402

#: Number of SIGKILLs per test run (each at a random moment).
KILLS = 40
SEED = 3


def _problem():
    rng = np.random.default_rng(0)
    x = rng.random((12, 6, 6))
    y = rng.integers(0, 3, 12)
    return x, y


def _fresh_net():
    return Network([Input(6, 6), Conv(2, 3), Subsample(2)], n_outputs=3, seed=1)


def _train_child(ckpt, epochs: int) -> None:
    """Child body: resume from ``ckpt`` if it exists, train to ``epochs``, then exit
    (status 130 after a Ctrl-C, during training or while loading)."""
    code = 0
    try:
        x, y = _problem()
        if os.path.exists(ckpt):
            net, state = load_checkpoint(ckpt)
        else:
            net, state = _fresh_net(), None
        session.fit(net, x, y, epochs=epochs, batch_size=4, alpha=0.5, seed=SEED, state=state,
                    checkpoint=ckpt)
    except (session.Interrupted, KeyboardInterrupt):
        code = 130
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)


def _fork(fn, *args) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    # SIGINT is blocked across the fork: a Ctrl-C that reached the child before its ``try`` (between
    # os.fork's return and the ``try``, seen under heavy load) escaped into pytest's code in the
    # child, which went on as a second pytest. Blocked, it waits until the child unblocks it inside.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        raise
    if pid == 0:
        # The child never returns into pytest: a Ctrl-C that lands before ``fn`` enters its own
        # ``try`` still ends it here, with the status a Ctrl-C gives.
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            fn(*args)
            code = 0
        except KeyboardInterrupt:
            code = 130
        finally:
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    return pid


def _reference(epochs: int):
    x, y = _problem()
    net = _fresh_net()
    state = session.fit(net, x, y, epochs=epochs, batch_size=4, alpha=0.5, seed=SEED)
    return net, state


def test_sigkill_at_random_moments_keeps_a_loadable_checkpoint(tmp_path):
    ckpt = tmp_path / "run.npz"
    rng = np.random.default_rng(12345)
    total = 100_000  # never reached: every child is killed
    epochs_seen = [0]
    kills = 0
    _reference(1)  # the parent loads the kernels (compiled engine) once; the children inherit them
    for _ in range(KILLS):
        pid = _fork(_train_child, ckpt, total)
        # Let it run a random while: 0–60 ms after the fork (start-up, loading, training, saving).
        time.sleep(rng.uniform(0, 0.06))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            pytest.fail(f"child ended by itself (status {status}) instead of being killed")
        kills += 1
        if ckpt.exists():
            net, state = load_checkpoint(ckpt)  # must never raise
            assert state.epoch >= epochs_seen[-1], "a checkpoint went back in time"
            assert state.batch == 0 and len(state.rL) == state.epoch * 3 + 1
            epochs_seen.append(state.epoch)
    assert kills == KILLS
    assert epochs_seen[-1] > 0, "no checkpoint was ever written: the kills came too early"
    # Temporary files of killed writers may remain; the checkpoint itself is whole.
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "run.npz"]
    assert all(name.startswith(".run.npz.") for name in leftovers), leftovers
    during_write = len(leftovers)  # each is a kill that landed inside a checkpoint write

    # Finish the run (a few more epochs) and compare with an uninterrupted run: bit for bit.
    target = epochs_seen[-1] + 3
    pid = _fork(_train_child, ckpt, target)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    resumed, state = load_checkpoint(ckpt)
    reference, ref_state = _reference(target)
    for name, value in reference.parameters().items():
        np.testing.assert_array_equal(resumed.parameters()[name], value, err_msg=name)
    assert state.rL == ref_state.rL and state.L == ref_state.L
    print(f"{kills} SIGKILLs ({during_write} inside a checkpoint write); "
          f"checkpoint epochs after each: {epochs_seen[1:]}")


def test_ctrl_c_at_random_moments_saves_and_resumes_bit_identically(tmp_path):
    ckpt = tmp_path / "run.npz"
    rng = np.random.default_rng(7)
    target = 200
    interrupted = 0
    mid_epoch = 0
    for _ in range(12):
        pid = _fork(_train_child, ckpt, target)
        time.sleep(rng.uniform(0.005, 0.05))
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status), f"Ctrl-C must not kill the process (status {status})"
        code = os.WEXITSTATUS(status)
        assert code in (0, 130), f"child failed with exit code {code}"
        if code == 130:
            interrupted += 1
            if ckpt.exists():
                _, state = load_checkpoint(ckpt)
                mid_epoch += state.batch > 0
        elif interrupted >= 3:
            break  # the run finished before the signal arrived
        else:  # it finished before 3 interruptions (a fast machine, or this process held up): train on
            target += 200
    pid = _fork(_train_child, ckpt, target)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    resumed, state = load_checkpoint(ckpt)
    reference, ref_state = _reference(target)
    for name, value in reference.parameters().items():
        np.testing.assert_array_equal(resumed.parameters()[name], value, err_msg=name)
    assert state.rL == ref_state.rL and state.L == ref_state.L
    assert interrupted >= 3
    print(f"{interrupted} Ctrl-C interruptions, {mid_epoch} of them mid-epoch")
