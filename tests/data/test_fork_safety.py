"""Forked DataLoader workers after PyAV decoded in the parent (issue 11's hang, root cause found by gdb: the worker
freed the parent's PyAV decoder and waited in avpriv_slicethread_free for threads fork had not copied)."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import gc, sys
    import av, torch
    from torch.utils.data import DataLoader, Dataset
    if sys.argv[2] == "imported":
        import codecprim  # registers codecprim.data's hook

    path = sys.argv[1]
    gc.disable()  # the parent does not happen to collect before the fork
    class Holder:
        pass
    holder = Holder()
    holder.me = holder  # a reference cycle, as PyAV's containers and streams often end up in
    holder.container = av.open(path)
    stream = holder.container.streams.video[0]
    stream.thread_type, stream.thread_count = "SLICE", 4
    for i, frame in enumerate(holder.container.decode(stream)):
        if i == 3:
            break
    del holder, stream, frame

    class Frames(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            gc.collect()  # a worker's collector runs at some point; here it runs at once
            import codecprim

            with codecprim.open(path) as reader:
                return reader[i].luma.float().mean()

    batches = list(DataLoader(Frames(), batch_size=2, num_workers=2, multiprocessing_context="fork", timeout=8))
    print("delivered", len(batches))
""")


@pytest.mark.parametrize("imports, delivers", [("imported", True), ("in the worker only", False)])
def test_forked_workers_survive_a_pyav_decoder_left_in_the_parent(real_clips, imports, delivers):
    # The second case is the control: codecprim imported only in the workers, so no hook ran in the parent,
    # and the same script hangs in the worker.
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(real_clips["bikes"]), imports],
                         capture_output=True, text=True, timeout=120)
    if delivers:
        assert run.returncode == 0 and "delivered 2" in run.stdout, run.stderr[-2000:]
    else:
        assert run.returncode != 0 and "timed out" in run.stderr, (run.stdout, run.stderr[-2000:])
