"""`genbench demo`: the study on Fashion-MNIST (`genbench study fmnist-quick`), sized for this machine.

The plan is made from throughput measured here at the start, not from constants of another box: a
few timed batches of the study's UNet give its network evaluations per second, which price the
scoring (samples x NFE of every UNet family, the speed metric, a short NFE sweep); what is left of
``--minutes`` after the scoring and an allowance for data, reference features and the report goes
to training, split evenly over the four families. Scoring uses the solver that is best at few NFE
(DPM-Solver++ 2M at 10, docs/BENCHMARKS.md; MeanFlow its own one step), and the per-checkpoint
history is left out: the training budget is where the minutes count.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

DEMO_PRESET = "fmnist-quick"
DEFAULT_MINUTES = 20.0
FAMILIES = ("gan", "diffusion", "flow", "few-step")   # the study's, each trained for the same minutes
# the families that sample with the UNet (the GAN's cost is negligible): solver and NFE of the evaluation
# (the solver best at few NFE; MeanFlow's own one-step sampler) and of the short NFE sweep
EVAL = {"diffusion": ("dpm++2m", 10), "flow": ("dpm++2m", 10), "few-step": ("meanflow", 1)}
SWEEP = {"diffusion": ("dpm++2m", (4, 8)), "flow": ("dpm++2m", (4, 8)), "few-step": ("meanflow", (2, 4))}
EVAL_N_RANGE = (1000, 2000)             # samples per evaluation: at least 1000 (recall and FID need them)
SCORING_SHARE = 0.25                    # the most of the minutes that scoring may take
SWEEP_N = 300
# the demo leaves out the `speed` metric (batch-1 latency and a batch sweep: ~6,700 evaluations per NFE and
# family): the evaluation's own sampling already measures images/s, which answers "fastest generation"
METRICS = "fid,kid,is,prdc,classes"
ALLOWANCE_S = (60.0, 0.08)              # data, reference features, report: a fixed part and a share of the minutes
MIN_TRAIN_MINUTES = 0.5


@dataclass(frozen=True)
class DemoPlan:
    minutes: float               # the whole demo
    unet_evals_per_s: float      # measured here
    train_minutes: float         # per family
    eval_n: int
    scoring_s: float             # estimated, from the measured rate
    allowance_s: float
    total_s: float               # the seconds left to plan: minutes less what was spent before the plan

    @property
    def fits(self) -> bool:
        """Whether training still gets its minimum once scoring and the allowance are paid."""
        return len(FAMILIES) * self.train_minutes * 60 + self.scoring_s + self.allowance_s <= self.total_s + 1

    def minutes_needed(self) -> float:
        """The least --minutes that fits (the allowance grows with the minutes)."""
        fixed = len(FAMILIES) * MIN_TRAIN_MINUTES * 60 + self.scoring_s + ALLOWANCE_S[0]
        return math.ceil((fixed / (1 - ALLOWANCE_S[1]) + self.minutes * 60 - self.total_s) / 60)

    def overrides(self) -> list[str]:
        nfe = {f: n for f, (_, n) in EVAL.items()}
        solver = {f: s for f, (s, _) in EVAL.items()}
        sweep = {f: {s: list(nfes)} for f, (s, nfes) in SWEEP.items()}
        return [f"budget={{minutes: {self.train_minutes:.2f}}}", f"eval.n={self.eval_n}", f"eval.metrics={METRICS}",
                f"eval.nfe={nfe}",
                f"eval.solver={solver}", "eval.history_n=null", f"sweep={{n: {SWEEP_N}, solvers: {sweep}}}"]

    def describe(self) -> str:
        spent = f" ({self.minutes - self.total_s / 60:.1f} of them already spent)" if self.total_s < self.minutes * 60 else ""
        return (f"demo plan for {self.minutes:g} minutes{spent} on this machine: the UNet runs {self.unet_evals_per_s:,.0f} "
                f"evaluations/s here, so scoring {self.eval_n} samples per family (DPM-Solver++ 2M at NFE 10, MeanFlow "
                f"at 1) "
                f"(+ a short NFE sweep) takes about {self.scoring_s / 60:.1f} min; with "
                f"{self.allowance_s / 60:.1f} min for data and the report, each family trains "
                f"{self.train_minutes:.1f} min")


def plan_demo(minutes: float, unet_evals_per_s: float, spent_s: float = 0.0) -> DemoPlan:
    """Split ``minutes`` between training and scoring from the measured UNet rate (pure); ``spent_s``
    of them are already gone (``make demo`` passes the time it spent installing)."""
    total = minutes * 60 - spent_s
    allowance = ALLOWANCE_S[0] + ALLOWANCE_S[1] * total
    per_sample = sum(n for _, n in EVAL.values()) / unet_evals_per_s
    fixed = SWEEP_N * sum(sum(nfes) for _, nfes in SWEEP.values()) / unet_evals_per_s
    n = int(max(0.0, SCORING_SHARE * total - fixed) / per_sample) // 100 * 100
    n = min(max(n, EVAL_N_RANGE[0]), EVAL_N_RANGE[1])
    scoring = fixed + n * per_sample
    train = (total - allowance - scoring) / len(FAMILIES) / 60
    return DemoPlan(minutes, unet_evals_per_s, max(MIN_TRAIN_MINUTES, math.floor(train * 20) / 20), n,
                    scoring, allowance, total)


def measure_unet_rate(seconds: float = 3.0, windows: int = 3) -> float:
    """Network evaluations per second of the demo's UNet at the sampling batch (64 on the CPU), in
    inference mode and channels-last as sampling runs it, after a warm-up: the fastest of ``windows``
    timed windows of ``seconds / windows`` each, so that a passing load at the start (another process
    finishing) does not shrink the whole plan."""
    import torch

    from genbench.config import load_config
    from genbench.nets import build_net
    from genbench.presets import resolve_config
    from genbench.sampling import resolve_batch_size

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = build_net(load_config(resolve_config("fmnist/ddpm")).nets["model"], (1, 28, 28)).to(device).eval()
    net.to(memory_format=torch.channels_last)
    batch = resolve_batch_size(None, device)
    x = torch.randn(batch, 1, 28, 28, device=device).contiguous(memory_format=torch.channels_last)
    t = torch.rand(batch, device=device)
    rates = []
    with torch.inference_mode():
        for _ in range(2):
            net(x, t)
        for _ in range(windows):
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds / windows or done < 2:
                net(x, t)
                done += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            rates.append(done * batch / (time.perf_counter() - start))
    return max(rates)


def run_demo(out: Path | None = None, progress: bool = True, overrides: list[str] = (),
             minutes: float = DEFAULT_MINUTES, spent_s: float = 0.0) -> dict[str, Path]:
    from genbench.errors import GenbenchError
    from genbench.study import run_study

    if not minutes > 0 or not math.isfinite(minutes):
        raise GenbenchError(f"--minutes must be a positive number (got {minutes})", "e.g. --minutes 20")
    if not 0 <= spent_s < minutes * 60:
        raise GenbenchError(f"--spent must be between 0 and the --minutes in seconds (got {spent_s:g})",
                            "it is the seconds of --minutes already used, e.g. by installing")
    plan = plan_demo(minutes, measure_unet_rate(), spent_s)
    if not plan.fits:
        raise GenbenchError(f"this machine is too slow for a {minutes:g}-minute demo: its UNet runs "
                            f"{plan.unet_evals_per_s:,.0f} evaluations/s, and scoring alone would take about "
                            f"{plan.scoring_s / 60:.0f} minutes", f"give it --minutes {plan.minutes_needed():.0f}")
    if progress:
        print(plan.describe(), flush=True)
    return run_study(DEMO_PRESET, [*plan.overrides(), *overrides], out=out or Path("runs") / "demo",
                     progress=progress)
