"""Training entry points: CPU-friendly runs over real clips, each started with ``python -m``, and unchanged
under ``torchrun --nproc_per_node N -m ...`` for data-parallel runs at full scale (gloo on CPU, NCCL on GPUs).

* ``python -m codecprim.train.delta_pretrain`` -- Δ-encoder pre-training (CoPE-VideoLM Eq. 9-12).
* ``python -m codecprim.train.codec_vit`` -- codec ViT with cluster discrimination (OneVision-Encoder).

Also here, as functions: :mod:`.attentive_probe` (the frozen-token probe both evaluations use) and
:mod:`.probe_task` (the motion-direction probe, trained codec ViT vs untrained, with the token-reduction baselines;
run by ``bench/probe_task.py``, which generates its footage).
"""
