"""Training throughput of a model config on this CPU: faces/s of SGD steps (forward, backward, update) at a
batch size, in bf16 autocast + channels_last as train.py runs them where the CPU has native bf16.

    python -m training.train_speed --config training/configs/fer_vgg_w48_scratch.json --threads 2 [--sam]
    python -m training.train_speed --set 'model_cfg={"width": 40}' --batch-size 64 --json

Config arguments (--config, --set, --batch-size) are train.py's and resolve the same way.

It prices a width or depth before a run is started: an epoch of the 28,559 Training faces takes
28,559 / faces_per_s seconds, plus evaluation. Inputs are random; speed does not depend on pixel values.
"""

import argparse
import functools
import json
import statistics
import time

import torch
import torch.nn.functional as F

from training.models import create_model
from training.train import batch_loss, get_args, sharpness_aware_grad


def step_times(model, batch_size, bf16, steps, warmup, sam_rho=0.0):
    """Seconds per SGD step on random faces, after `warmup` untimed steps."""
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch_size, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    target = F.one_hot(torch.randint(0, 7, (batch_size,)), 7).float()
    loss_fn = functools.partial(batch_loss, model, x, target, bf16)  # the trainer's own loss

    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn()[0].backward()
        if sam_rho > 0:
            sharpness_aware_grad(model.parameters(), sam_rho, loss_fn)
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--sam", action="store_true", help="time SAM steps (two passes), config's sam_rho")
    ap.add_argument("--json", action="store_true")
    a, train_argv = ap.parse_known_args(argv)
    cfg = get_args(train_argv)[1]
    torch.set_num_threads(a.threads)
    bf16 = cfg["bf16"]
    model = create_model(cfg["model"], verbose=False, **cfg["model_cfg"])
    rho = (cfg.get("sam_rho") or 0.05) if a.sam else 0.0
    times = step_times(model, cfg["batch_size"], bf16, a.steps, a.warmup, rho)
    per_step = statistics.median(times)
    report = {
        "model": cfg["model"],
        "model_cfg": cfg["model_cfg"],
        "batch_size": cfg["batch_size"],
        "bf16": bf16,
        "sam_rho": rho,
        "threads": a.threads,
        "steps": a.steps,
        "median_step_s": per_step,
        "faces_per_s": cfg["batch_size"] / per_step,
    }
    if a.json:
        print(json.dumps(report, indent=1))
    else:
        print(
            f"{cfg['model']} {json.dumps(cfg['model_cfg'])} batch {cfg['batch_size']} "
            f"{'bf16' if bf16 else 'fp32'}{' SAM' if rho else ''}, {a.threads} thread(s): "
            f"{report['faces_per_s']:.0f} faces/s ({per_step * 1e3:.1f} ms per step, median of {a.steps})"
        )
    return report


if __name__ == "__main__":
    main()
