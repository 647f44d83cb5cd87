"""The ``genbench`` command: thin parsing over the library. Heavy imports happen inside commands,
so that ``--help`` answers at once."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from genbench.config import CLIP_MODES, DOWNLOADABLE_SETS, solvers_for
from genbench.errors import GenbenchError
from genbench.presets import resolve_config

SOLVER_HELP = (", ".join(n + " (ancestral)" * (n == "ddpm") for n in solvers_for("diffusion"))  # all solvers
               + " (default: the run's)")
DISTRIBUTED_COMMANDS = ("train", "sample", "eval")   # the ones that run under torchrun


def _launched_world() -> int:
    """WORLD_SIZE as torchrun sets it, read without importing torch (``--help`` stays fast)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def _is_main_process() -> bool:
    return _launched_world() <= 1 or os.environ.get("RANK", "0") == "0"


BATCH_HELP = "samples per batch (default 64 on the CPU, 256 on a GPU; on the CPU the samples do not depend on it)"
CLIP_HELP = ("keep the x0 prediction in [-1, 1] while sampling: static (clamp, as Ho et al.'s sampler) or "
             "dynamic (Saharia et al. 2022's thresholding), or none (default: the run's sample.clip)")
TOL_HELP = "dopri5's relative and absolute tolerance (default 1e-5)"


def cmd_train(args: argparse.Namespace) -> int:
    from genbench import dist
    from genbench.config import load_config
    from genbench.rundir import open_run
    from genbench.train.loop import train

    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.root={args.data_dir}")
    cfg = load_config(resolve_config(args.config), overrides)
    run_dir = Path(args.out) if args.out else Path("runs") / cfg.name
    # rank 0 holds the run directory (lock, creation, --overwrite); a start that fails before the
    # first checkpoint removes what it made and puts back a run it was replacing
    with open_run(run_dir, cfg, resume=args.resume, overwrite=args.overwrite) as (cfg, on_checkpoint):
        info = train(cfg, run_dir, resume=args.resume, progress=not args.no_progress, on_checkpoint=on_checkpoint)
    if dist.is_main():
        print(f"trained {cfg.name}: {info['step']} steps, {info['images_seen']} images in "
              f"{info['train_seconds']:.0f} s -> {run_dir}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from genbench.sample_cmd import sample_run

    paths = sample_run(Path(args.run), n=args.n, seed=args.seed, batch_size=args.batch_size,
                       use_ema=not args.raw, solver=args.solver, nfe=args.nfe,
                       checkpoint=args.checkpoint, out=Path(args.out) if args.out else None,
                       formats=args.format.split(","), overwrite=args.overwrite, device=args.device,
                       tol=args.tol, clip=args.clip, class_text=args.class_text, guidance=args.guidance,
                       guidance_interval=args.guidance_interval)
    for p in paths if _is_main_process() else []:
        print(p)
    return 0


def _guidance_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--class", dest="class_text", default=None, metavar="CLASS",
                   help="a conditional model's class(es), by name or index, comma-separated (default: every "
                        "class the run was trained on, in turn by seed; `sample` then draws one grid row per class)")
    p.add_argument("--guidance", type=float, default=None, metavar="W",
                   help="classifier-free guidance scale w of a conditional diffusion/flow model: D_u + w (D_c - D_u); "
                        "1 = conditional, 0 = unconditional; a guided step costs 2 NFE (one batched call of 2N)")
    p.add_argument("--guidance-interval", default=None, metavar="LO,HI",
                   help="guide only where the noise level sigma (= sigma_t / alpha_t, EDM's sigma) is in (LO, HI] "
                        "(Kynkaanniemi et al. 2024), e.g. 0.28,5.42")


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise GenbenchError(f"{flag} {text!r} is not a comma list of whole numbers", f"e.g. {flag} 2,4,8,16") from None
    return values


def cmd_eval(args: argparse.Namespace) -> int:
    from genbench.evaluate import SWEEP_NFE, evaluate_path, format_record, nfe_sweep

    external = dict(dataset=args.dataset, out=Path(args.out) if args.out else None, data_dir=args.data_dir)

    if args.nfe_sweep:
        solvers = (args.solver or "").split(",") if args.solver else None
        if not solvers:
            raise GenbenchError("--nfe-sweep needs --solver NAME[,NAME...]", "e.g. --solver euler,heun,dpm++2m")
        nfes = _int_list(args.nfe_list, "--nfe-list") if args.nfe_list is not None else SWEEP_NFE
        metrics = args.metrics if args.metrics is not None else "fid,kid"
        path, record = nfe_sweep(Path(args.run), solvers, nfes, n=10_000 if args.n is None else args.n, seed=args.seed,
                                 metrics=metrics, checkpoint=args.checkpoint,
                                 use_ema=not args.raw, batch_size=args.batch_size,
                                 extractor_kind=args.extractor, inception_weights=args.inception_weights,
                                 ref_split=args.ref_split, device=args.device, tol=args.tol, clip=args.clip,
                                 **external)
        if not record:   # a rank other than 0 (torchrun): it only sampled
            return 0
        key = metrics.split(",")[0]
        key = {"modes": "hq_fraction", "prdc": "precision"}.get(key, key)
        for solver, points in record["curves"].items():
            print(f"{solver:>14}: " + "  ".join(f"NFE {p['nfe']}: {key} {p.get(key, float('nan')):.4g}"
                                                for p in points))
        print(f"-> {path}")
        return 0

    if args.guidance_sweep is not None:
        from genbench.guidance_sweep import guidance_sweep, parse_scales

        if args.guidance is not None:
            raise GenbenchError("--guidance and --guidance-sweep both set the scale", "keep one of them")
        path, record = guidance_sweep(Path(args.run), parse_scales(args.guidance_sweep),
                                      n=2000 if args.n is None else args.n, seed=args.seed,
                                      metrics=args.metrics or "fid,is,prdc,classes", solver=args.solver, nfe=args.nfe,
                                      guidance_interval=args.guidance_interval, checkpoint=args.checkpoint,
                                      use_ema=not args.raw, batch_size=args.batch_size, extractor_kind=args.extractor,
                                      inception_weights=args.inception_weights, ref_split=args.ref_split,
                                      device=args.device, tol=args.tol, clip=args.clip, class_text=args.class_text)
        if not record:
            return 0
        for p in record["points"]:
            print(f"w {p['w']:>5g}: " + "  ".join(f"{k} {p[k]:.4g}" for k in p if k not in ("w", "images_per_s")))
        print("best: " + ", ".join(f"{k} at w {v['w']:g}" for k, v in record["best"].items()))
        print(f"-> {path}")
        return 0

    # -n: 10,000 samples of a model; all of the samples in a folder or array (or the first N)
    n = {"n": args.n} if args.n is not None else {}
    path, record = evaluate_path(
        Path(args.run), checkpoint=args.checkpoint, metrics=args.metrics, solver=args.solver,
        nfe=args.nfe, use_ema=not args.raw, batch_size=args.batch_size, seed=args.seed,
        extractor_kind=args.extractor, inception_weights=args.inception_weights, ref_split=args.ref_split,
        floor=not args.no_floor, device=args.device, overwrite=args.overwrite, tol=args.tol, clip=args.clip,
        value_range=args.value_range, class_text=args.class_text, guidance=args.guidance,
        guidance_interval=args.guidance_interval, **external, **n)
    if record:   # rank 0's; the other ranks only sampled
        print(format_record(record))
        print(f"-> {path}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from genbench.data import describe_datasets, download

    if args.download:
        print(f"{args.download}: {download(args.download, args.data_dir)}")
        return 0
    for row in describe_datasets(args.data_dir):
        if row["found"]:
            print(f"{row['name']:<14} found      {row['where']}")
        else:
            print(f"{row['name']:<14} missing    searched: {', '.join(map(str, row['searched']))}")
            print(f"{'':<14}            get it: {row['how_to_get']}")
    return 0


def cmd_mark_best(args: argparse.Namespace) -> int:
    from genbench.train.checkpoint import mark_best

    run = Path(args.run)
    if not (run / "config.yaml").is_file():
        raise GenbenchError(f"{run} is not a genbench run (no config.yaml)", "give a directory made by `genbench train`")
    print(mark_best(run / "checkpoints", args.step))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from genbench.report import build_report
    from genbench.rundir import write_folder

    runs = [Path(r) for r in args.runs]
    paths = write_folder(Path(args.out), lambda out: build_report(runs, out, title=args.title,
                                                                 neighbours=not args.no_neighbours),
                         overwrite=args.overwrite)
    for kind in ("html", "md", "json"):
        print(f"{kind:>4}: {paths[kind]}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from genbench.export import export_run

    paths = export_run(Path(args.run), Path(args.to), overwrite=args.overwrite, checkpoint=args.checkpoint,
                       use_ema=not args.raw, diffusers_format=not args.no_diffusers)
    for kind, p in paths.items():
        print(f"{kind:>9}: {p}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from genbench.study import run_study

    paths = run_study(args.preset, list(args.overrides), out=Path(args.out) if args.out else None,
                      progress=not args.no_progress, data_dir=args.data_dir)
    print(f"report: {paths['html']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from genbench.demo import run_demo

    paths = run_demo(out=Path(args.out) if args.out else None, progress=not args.no_progress,
                     overrides=list(args.overrides), minutes=args.minutes, spent_s=args.spent)
    print(f"report: {paths['html']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    # --debug is accepted before or after the command; SUPPRESS keeps a sub-command's default
    # from overwriting a --debug given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p = argparse.ArgumentParser(prog="genbench",
                                description="Train, sample and compare GANs, diffusion and flow models.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", parents=[common], help="train a model from a config",
                       description="Train from a YAML config (or preset name like fmnist/ddpm) "
                                   "with key=value overrides, e.g. train.budget.minutes=10.")
    t.add_argument("config", help="YAML file or preset name (configs/<name>.yaml)")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys")
    t.add_argument("--out", help="run directory (default runs/<name>)")
    t.add_argument("--data-dir", help="folder holding the dataset files")
    t.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", parents=[common], help="generate samples from a trained run",
                       description="Generate N samples (PNG grid and/or .npz) with per-sample seeds.")
    s.add_argument("run", help="run directory, diffusers pipeline folder or `genbench export` folder (these two "
                               "need -o)")
    s.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--seed", type=int, default=0, help="first seed; sample k uses seed+k (default 0)")
    s.add_argument("--batch-size", type=int, default=None, help=BATCH_HELP)
    s.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA")
    s.add_argument("--solver", default=None, help=SOLVER_HELP)
    s.add_argument("--nfe", type=int, default=None, help="network evaluations (default: the run's)")
    s.add_argument("--tol", type=float, default=None, help=TOL_HELP)
    s.add_argument("--clip", choices=["none", *CLIP_MODES], default=None, help=CLIP_HELP)
    _guidance_args(s)
    s.add_argument("--checkpoint", type=int, default=None, help="checkpoint step (default: latest)")
    s.add_argument("-o", "--out", help="output path without extension (default: in RUN/samples/)")
    s.add_argument("--format", default="png,npz", help="png, npz or png,npz (default)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.add_argument("--overwrite", action="store_true", help="replace existing output files")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("eval", parents=[common], help="score a run: FID, KID, IS, P/R/D/C, modes, speed",
                       description="Sample a run with per-sample seeds and score it against real data; "
                                   "writes RUN/eval/*.json with the full protocol and the real-data floor.")
    e.add_argument("run", metavar="PATH",
                   help="run directory; or from outside genbench (with --dataset): a folder of PNG/JPEG samples, "
                        "an .npy/.npz array of samples, a diffusers pipeline folder, a `genbench export` folder")
    e.add_argument("--dataset", default=None,
                   help="what samples or a model from outside genbench are compared with: fashion_mnist, mnist, "
                        "cifar10, stacked_fashion_mnist")
    e.add_argument("-o", "--out", default=None,
                   help="entry folder for the scores of samples/models from outside genbench (default "
                        "runs/external-<name>); `genbench compare` takes it beside runs")
    e.add_argument("--data-dir", default=None, help="folder holding the dataset files (outside genbench only)")
    e.add_argument("--value-range", choices=["auto", "signed", "unit", "bytes"], default="auto",
                   help="how an array's values read: [-1, 1], [0, 1] or 0..255 (default: detected, refused "
                        "when ambiguous)")
    e.add_argument("--checkpoint", type=int, default=None, help="checkpoint step (default: latest)")
    e.add_argument("--metrics", default=None,
                   help="comma list of fid,kid,is,prdc,modes,memorisation,speed (default: fid,kid,is,prdc for "
                        "images; modes,prdc for 2-D data)")
    e.add_argument("-n", type=int, default=None,
                   help="samples to generate (default 10000), or the first N of a folder/array (default: all)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--batch-size", type=int, default=None, help=BATCH_HELP)
    e.add_argument("--solver", default=None, help=SOLVER_HELP)
    e.add_argument("--nfe", type=int, default=None, help="network evaluations (default: the run's)")
    e.add_argument("--tol", type=float, default=None, help=TOL_HELP)
    e.add_argument("--clip", choices=["none", *CLIP_MODES], default=None, help=CLIP_HELP)
    e.add_argument("--raw", action="store_true", help="raw weights instead of the EMA")
    _guidance_args(e)
    e.add_argument("--extractor", choices=["domain", "inception"], default=None,
                   help="feature network (default: domain classifier for (Fashion-)MNIST, else Inception-v3)")
    e.add_argument("--inception-weights", default=None,
                   help="local pt_inception-2015-12-05-6726825d.pth (or $GENBENCH_INCEPTION_WEIGHTS)")
    e.add_argument("--ref-split", choices=["train", "test"], default="train")
    e.add_argument("--no-floor", action="store_true", help="skip the real-data floor")
    e.add_argument("--nfe-sweep", action="store_true",
                   help="FID/KID against NFE for each --solver (comma list) over 1,2,4,...,1000")
    e.add_argument("--nfe-list", default=None, help="NFE counts for --nfe-sweep (comma list)")
    e.add_argument("--guidance-sweep", default=None, metavar="W1,W2,...",
                   help="a conditional model's FID, IS, precision/recall and class consistency at each guidance "
                        "scale (default 2,000 samples; metrics fid,is,prdc,classes); the report plots the curve")
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    e.add_argument("--overwrite", action="store_true", help="replace an existing eval JSON")
    e.set_defaults(func=cmd_eval)

    d = sub.add_parser("data", parents=[common], help="which datasets are found, where, and how to get the rest")
    d.add_argument("--data-dir", help="also search this folder (and download into it)")
    d.add_argument("--download", choices=DOWNLOADABLE_SETS,
                   help="download a dataset's official files (checksums verified)")
    d.set_defaults(func=cmd_data)

    b = sub.add_parser("mark-best", parents=[common], help="keep a checkpoint forever (pruning skips it)",
                       description="Mark RUN's checkpoint at STEP as best: keep_last pruning never deletes it.")
    b.add_argument("run", help="run directory")
    b.add_argument("step", type=int, help="checkpoint step")
    b.set_defaults(func=cmd_mark_best)

    st = sub.add_parser("study", parents=[common], help="train GAN, diffusion and flow on one budget, evaluate, report",
                        description="Train the families under one matched budget, evaluate them with one "
                                    "protocol (+ NFE sweeps) and write the report. Presets: configs/study/*.yaml "
                                    "(fmnist-quick, fmnist, toy2d, cifar10, seed-cifar10-cars). Overrides such as "
                                    "budget.minutes=5 seeds=3 eval.n=5000.")
    st.add_argument("preset", help="study preset name or YAML file (configs/study/<name>.yaml)")
    st.add_argument("overrides", nargs="*", metavar="key=value", help="override study keys, e.g. seeds=3")
    st.add_argument("--out", help="study folder (default runs/study-<preset>); rerun to continue it")
    st.add_argument("--data-dir", help="folder holding the dataset files")
    st.add_argument("--no-progress", action="store_true", help="no progress display")
    st.set_defaults(func=cmd_study)

    c = sub.add_parser("compare", parents=[common], help="the study report from existing run directories",
                       description="Build the report (HTML + Markdown) from evaluated runs; refuses runs whose "
                                   "evaluation protocols differ, naming the field.")
    c.add_argument("runs", nargs="+", metavar="RUN",
                   help="run directories (each with eval/*.json), or entry folders written by `genbench eval` for "
                        "samples/models from outside genbench")
    c.add_argument("-o", "--out", required=True, help="report folder")
    c.add_argument("--title", default=None, help="report title")
    c.add_argument("--no-neighbours", action="store_true", help="skip the nearest-training-image search")
    c.add_argument("--overwrite", action="store_true",
                   help="replace an existing report folder (only one genbench wrote; swapped in once complete)")
    c.set_defaults(func=cmd_compare)

    x = sub.add_parser("export", parents=[common], help="a run's sampling network as a folder to share",
                       description="Write the EMA weights (safetensors), the config, a model card (README.md with "
                                   "Hugging Face front-matter, data provenance, recipe, evaluations, samples) and, "
                                   "where the network maps exactly, a diffusers DDIMPipeline (verified by loading "
                                   "it back).")
    x.add_argument("run", help="run directory")
    x.add_argument("--to", required=True, help="export folder")
    x.add_argument("--checkpoint", type=int, default=None, help="checkpoint step (default: latest)")
    x.add_argument("--raw", action="store_true", help="the raw weights instead of the EMA")
    x.add_argument("--no-diffusers", action="store_true", help="do not write the diffusers format")
    x.add_argument("--overwrite", action="store_true", help="replace an export folder genbench wrote")
    x.set_defaults(func=cmd_export)

    m = sub.add_parser("demo", parents=[common], help="the study on Fashion-MNIST, sized for this machine",
                       description="`genbench study fmnist-quick` planned for --minutes (default 20) on this "
                                   "machine: its UNet's speed is measured first, scoring is priced from it and the "
                                   "rest goes to training the four families; the report is "
                                   "runs/demo/report/report.html.")
    m.add_argument("overrides", nargs="*", metavar="key=value", help="override study keys, e.g. budget.minutes=1")
    m.add_argument("--out", help="study folder (default runs/demo)")
    m.add_argument("--minutes", type=float, default=20.0, help="the whole demo's wall-clock minutes (default 20)")
    m.add_argument("--spent", type=float, default=0.0, metavar="SECONDS",
                   help="seconds of --minutes already used before this command (make demo passes its install time)")
    m.add_argument("--no-progress", action="store_true")
    m.set_defaults(func=cmd_demo)
    return p


PATH_OPTIONS = {"out": "--out", "data_dir": "--data-dir", "inception_weights": "--inception-weights", "to": "--to"}


def _check_path_options(args: argparse.Namespace) -> None:
    """Paths given on the command line are non-empty, and a ``~user`` in them names a known user
    (``~`` and ``~user`` are expanded here, as a shell would)."""
    for attr, flag in PATH_OPTIONS.items():
        value = getattr(args, attr, None)
        if value is None:
            continue
        if not value.strip():
            raise GenbenchError(f"{flag} is empty", f"give a path after {flag}, or leave {flag} out")
        if value.startswith("~"):
            expanded = os.path.expanduser(value)
            if expanded == value:
                user = value[1:].split("/", 1)[0] or "(the current user)"
                raise GenbenchError(f"{flag} {value}: no home directory for user '{user}' is known here",
                                    f"write the full path after {flag}")
            setattr(args, attr, expanded)


def _os_error_line(err: OSError) -> str:
    import errno

    where = f" ({err.filename})" if err.filename else ""
    fix = {errno.ENOSPC: "free disk space, then continue with --resume: earlier checkpoints are intact",
           errno.EDQUOT: "free disk space, then continue with --resume: earlier checkpoints are intact",
           errno.EACCES: "choose a location you may write to", errno.EPERM: "choose a location you may write to",
           errno.EROFS: "choose a writable file system"}.get(err.errno, "check the path and try again")
    return GenbenchError(f"{err.strerror or err}{where}", fix).line()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every ``finally`` (temp files, a failed start's
    clean-up, the run lock) runs as it does for Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return _main(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also come after options (argparse stops a positional list at them)
    if getattr(args, "overrides", None) is not None:
        args.overrides += [e for e in extra if "=" in e and not e.startswith("-")]
        extra = [e for e in extra if not ("=" in e and not e.startswith("-"))]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if _launched_world() > 1:
            if args.command not in DISTRIBUTED_COMMANDS:
                raise GenbenchError(f"`genbench {args.command}` runs in one process, not under torchrun "
                                    f"(WORLD_SIZE={_launched_world()})",
                                    f"launch it without torchrun; {', '.join(DISTRIBUTED_COMMANDS)} run under torchrun")
            from genbench import dist

            dist.init()
        _check_path_options(args)
        return args.func(args)
    except GenbenchError as err:
        if args.debug:
            raise
        if _is_main_process():   # every rank meets the same error: rank 0 alone says it
            print(f"genbench: error: {err.line()}", file=sys.stderr)
        return 2
    except OSError as err:   # the file system said no (disk full, read-only, permissions): one line too
        if args.debug:
            raise
        print(f"genbench: error: {_os_error_line(err)}", file=sys.stderr)
        return 2
    except Terminated:
        print("genbench: terminated (SIGTERM); temporary files removed", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("genbench: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # an unexpected failure still gets one line without --debug
        if args.debug:
            raise
        msg = " ".join(str(err).split())[:300]
        print(f"genbench: internal error: {type(err).__name__}: {msg} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
