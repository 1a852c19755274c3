"""The training entry points under ``torchrun``: 2 CPU processes (gloo) versus one process.

Each entry point is launched exactly as a user would (``python -m torch.distributed.run
--standalone --nproc_per_node 2 -m codecprim.train.<name> ...``). The equivalence tests are
the oracle for the data-parallel wiring: with the same seed, the 2-process run (each rank on
its block of every global batch) must end with the weights of the 1-process run on whole
batches. Batch 5 splits 3 + 2, so a rank weighting that is only right for even splits, per-rank
batch-norm statistics, missing gradient averaging, or (codec ViT) a missing world-size factor on
the backbone gradients or a per-shard clipping norm all show up as weight differences.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

pytestmark = [
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI to generate clips"),
    pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed + gloo"),
]

TIMEOUT = 300  # seconds per launch; a run takes ~10 s on 2 idle cores


@pytest.fixture(autouse=True)
def _restore_threads():
    # The in-process single runs set torch's thread count (--threads 1); give it back.
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _torchrun(module: str, args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # The workers must import the same codecprim as this process, wherever it came from.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["OMP_NUM_THREADS"] = "1"
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # torchrun sets its own
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", module, *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _step_losses(text: str) -> dict[int, float]:
    return {int(s): float(v) for s, v in re.findall(r"^step (\d+): batch loss (\S+)", text, flags=re.M)}


def _state(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k: v.double() for k, v in load_file(str(path)).items()}


def _diffs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
    assert a.keys() == b.keys()
    return torch.cat([(a[k] - b[k]).abs().flatten() for k in a])


# ----------------------------------------------------------------------------- Δ-encoder pre-training

DELTA_FLAGS = ["--no-skvideo", "--preset", "tiny", "--size", "64x112", "--warmup", "1", "--lr", "3e-3",
               "--log-every", "1", "--threads", "1"]


def test_delta_pretrain_runs_under_torchrun(tmp_path):
    ckpt = tmp_path / "delta.safetensors"
    proc = _torchrun("codecprim.train.delta_pretrain", [
        "--workdir", str(tmp_path / "clips"), "--clip-frames", "10", "--max-pairs-per-clip", "8",
        "--steps", "4", "--batch-size", "4", "--save", str(ckpt), *DELTA_FLAGS,
    ])
    out = proc.stdout
    assert out.count("distributed: world size 2, backend gloo, device cpu, global batch 4 (2 on rank 0)") == 1
    assert out.count("step 0: train loss") == 1 and out.count("held-out:") == 1  # rank 0 prints, once
    losses = _step_losses(out)
    assert sorted(losses) == [1, 2, 3, 4] and all(math.isfinite(v) and v > 0 for v in losses.values())
    # Rank 0 wrote the synthetic clips, the other rank reused them; no temporary files are left.
    assert len(list((tmp_path / "clips").glob("*.mp4"))) == 3 and not list((tmp_path / "clips").glob("*.part.*"))
    from codecprim.models.delta_pretrain import load_checkpoint

    model = load_checkpoint(ckpt)
    assert all(torch.isfinite(t).all() for t in model.state_dict().values())
    assert model.image_out.weight.abs().sum() > 0  # trained (W_out starts at zero)


def test_delta_pretrain_two_processes_match_one(tmp_path, capsys):
    from codecprim.train.delta_pretrain import generate_clips, main

    clip = generate_clips(str(tmp_path), size=(160, 256), frames=14, kinds=("pan",))[0]
    common = [clip, "--no-synthetic", "--steps", "3", "--batch-size", "5", *DELTA_FLAGS]
    main([*common, "--steps", "0", "--save", str(tmp_path / "init.safetensors")])
    main([*common, "--save", str(tmp_path / "one.safetensors")])
    single_out = capsys.readouterr().out
    proc = _torchrun("codecprim.train.delta_pretrain", [*common, "--save", str(tmp_path / "two.safetensors")])
    assert "distributed: world size 2, backend gloo, device cpu, global batch 5 (3 on rank 0)" in proc.stdout

    init, one, two = (_state(tmp_path / f"{n}.safetensors") for n in ("init", "one", "two"))
    moved = {k for k in one if (one[k] - init[k]).abs().max() > 1e-3}  # Adam steps ~lr; decay alone < 5e-4
    # Not a vacuous comparison: the steps reached the Δ-encoder's trunk (conv weights and the
    # batch-norm running statistics, which depend on the statistics of the whole batch).
    assert any(k.startswith("encoder.trunk.") and k.endswith("conv1.weight") for k in moved)
    assert any(k.endswith("running_var") for k in moved)
    # Adam's first steps divide each gradient by its own magnitude, so the weights whose gradients the
    # zero-initialised W_out still gates (tiny, summed in another order across two ranks) move by slightly
    # different amounts: measured 7e-6 before the pairs became CoPE's s = 1 deltas, 4.1e-5 after (image_in).
    assert float(_diffs(one, two).max()) < 1e-4
    # The logged loss of the 2-process run is the global-batch mean, as printed by one process.
    single, double = _step_losses(single_out), _step_losses(proc.stdout)
    assert sorted(double) == [1, 2, 3]
    assert all(double[s] == pytest.approx(single[s], rel=1e-5) for s in single)


# ----------------------------------------------------------------------------- codec ViT

VIT_FLAGS = ["--classes", "pan", "life", "--no-skvideo", "--clips-per-class", "4", "--test-per-class", "1",
             "--size", "56", "--frames", "8", "--num-frames", "8", "--budget", "24", "--teacher", "pixels",
             "--clusters", "6", "--topk", "2", "--depth", "1", "--probe-steps", "5", "--threads", "1"]


def test_codec_vit_runs_under_torchrun(tmp_path):
    proc = _torchrun("codecprim.train.codec_vit", ["--workdir", str(tmp_path), "--steps", "4", "--batch", "4",
                                                   *VIT_FLAGS])
    out = proc.stdout
    assert out.count("distributed: world size 2, backend gloo, device cpu, global batch 4 (2 clips on rank 0)") == 1
    assert out.count('"world_size": 2') == 1  # the report, printed by rank 0 only
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["world_size"] == 2 and report["clips"] == {"train": 6, "test": 2}
    assert len(report["losses"]) == 4 and all(math.isfinite(v) and v > 0 for v in report["losses"])
    assert not list((tmp_path / "clips").glob("*.part.*"))
    from codecprim.models.codec_vit import CodecViT

    model = CodecViT.from_checkpoint(tmp_path / "codec_vit.safetensors")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_codec_vit_two_processes_match_one(tmp_path):
    from codecprim.train.codec_vit import main

    args = ["--workdir", str(tmp_path), "--steps", "4", "--batch", "5", *VIT_FLAGS]
    one_report = main(args)
    shutil.copy(tmp_path / "codec_vit.safetensors", tmp_path / "one.safetensors")
    one_losses = json.loads((tmp_path / "report.json").read_text())["losses"]
    _torchrun("codecprim.train.codec_vit", args)  # reuses the clips, overwrites the checkpoint and report
    two_report = json.loads((tmp_path / "report.json").read_text())
    assert two_report["world_size"] == 2 and one_report["world_size"] == 1

    # The loss is the global-batch mean on every rank (s = 64 amplifies rounding: rel 1e-4).
    assert two_report["losses"] == pytest.approx(one_losses, rel=1e-4)
    diff = _diffs(_state(tmp_path / "one.safetensors"), _state(tmp_path / "codec_vit.safetensors"))
    # AdamW's first steps move each weight by ~lr * g / (|g| + eps): for the few gradients near
    # eps = 1e-8 the two runs' rounding differences are amplified (up to ~0.15 lr seen), so the
    # bound is on almost every weight, plus a loose cap. A missing world-size factor on the
    # backbone gradients puts ~80 % of the weights beyond 1e-5 after a few steps.
    assert float((diff > 1e-5).double().mean()) < 1e-4
    assert float(diff.max()) < 0.5 * 5e-4  # half the learning rate
