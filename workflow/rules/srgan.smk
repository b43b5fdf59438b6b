# SRGAN family for bone (bone SRGAN report): train a preset at a scale, super-resolve the
# scan's whole volume, score PSNR/SSIM against HR and bicubic, plot. Paths: see
# docs/architecture.md; helpers in common.smk.


rule train_srgan:
    input:
        unpack(plan_of(plan.train_srgan_inputs, fold_of=_fold_of)),
    output:
        model="results/models/srgan/{scan}_{preset}_x{scale}/best.pt",
        summary="results/models/srgan/{scan}_{preset}_x{scale}/train.json",
        log_csv="results/models/srgan/{scan}_{preset}_x{scale}/log.csv",
    log:
        "logs/train_srgan/{scan}_{preset}_x{scale}.log",
    benchmark:
        "logs/benchmark/train_srgan/{scan}_{preset}_x{scale}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: SIZING_THREADS["train_srgan"]
    resources:
        runtime=size_of("train_srgan", "runtime"),
        mem_mb=size_of("train_srgan", "mem_mb"),
        gpu=gpu_of("train_srgan"),
    params:
        train=plan_of(plan.train_srgan_params, fold_of=_fold_of),
    script:
        "../../scripts/train_srgan.py"


rule super_resolve:
    input:
        unpack(plan_of(plan.super_resolve_inputs)),
    output:
        volume=directory("results/sr_volumes/{scan}/{preset}_x{scale}"),
    log:
        "logs/super_resolve/{scan}_{preset}_x{scale}.log",
    benchmark:
        "logs/benchmark/super_resolve/{scan}_{preset}_x{scale}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        runtime=size_of("super_resolve", "runtime"),
        mem_mb=size_of("super_resolve", "mem_mb"),
        gpu=gpu_of("super_resolve"),
    params:
        sr=plan_of(plan.super_resolve_params, fold_of=_fold_of),
    script:
        "../../scripts/super_resolve.py"


rule compute_sr_metrics:
    input:
        volumes=plan_of(plan.sr_run_volumes),
        split=rules.split_manifest.output.split,
    output:
        table="results/metrics/sr/{scan}.csv",
        slices="results/metrics/sr/slices/{scan}.csv",
    log:
        "logs/compute_sr_metrics/{scan}.log",
    benchmark:
        "logs/benchmark/compute_sr_metrics/{scan}.tsv"
    conda:
        "../../envs/eval.yaml"
    resources:
        runtime=size_of("compute_sr_metrics", "runtime"),
        mem_mb=size_of("compute_sr_metrics", "mem_mb"),
    params:
        eval_set=plan_of(plan.sr_eval_set, fold_of=_fold_of),
        ssim_window=EVALUATE["ssim_window"],
    script:
        "../../scripts/compute_sr_metrics.py"


use rule compute_sr_metrics as compute_sr_metrics_grid with:
    input:
        volumes=plan_of(plan.sr_grid_volumes),
        split=rules.split_manifest.output.split,
    output:
        table="results/metrics/sr/grid/{scan}.csv",
        slices="results/metrics/sr/grid/slices/{scan}.csv",
    log:
        "logs/compute_sr_metrics_grid/{scan}.log",
    benchmark:
        "logs/benchmark/compute_sr_metrics_grid/{scan}.tsv"


rule compute_sr_metrics_cv:
    input:
        slices=srgan_cv_slices(),
    output:
        table="results/metrics/sr/cv.csv",
    log:
        "logs/compute_sr_metrics_cv/cv.log",
    benchmark:
        "logs/benchmark/compute_sr_metrics_cv/cv.tsv"
    conda:
        "../../envs/eval.yaml"
    resources:
        runtime=size_of("compute_sr_metrics_cv", "runtime"),
        mem_mb=size_of("compute_sr_metrics_cv", "mem_mb"),
    script:
        "../../scripts/compute_sr_metrics_cv.py"


rule plot_sr_metrics:
    input:
        tables=expand(rules.compute_sr_metrics.output.table, scan=SRGAN["scans"]),
    output:
        png=report(
            "results/plots/sr_metrics.png",
            caption="../report/sr_metrics.rst",
            category="Super-resolution",
            labels={"figure": "PSNR/SSIM"},
        ),
        pdf="results/plots/sr_metrics.pdf",
    log:
        "logs/plot_sr_metrics/sr_metrics.log",
    benchmark:
        "logs/benchmark/plot_sr_metrics/sr_metrics.tsv"
    conda:
        "../../envs/plot.yaml"
    resources:
        runtime=size_of("plot_sr_metrics", "runtime"),
        mem_mb=size_of("plot_sr_metrics", "mem_mb"),
    script:
        "../../scripts/plot_sr_metrics.py"


use rule plot_sr_metrics as plot_sr_metrics_grid with:
    input:
        tables=expand(rules.compute_sr_metrics_grid.output.table, scan=SRGAN["scans"]),
    output:
        png="results/plots/sr_metrics_grid.png",
        pdf="results/plots/sr_metrics_grid.pdf",
    log:
        "logs/plot_sr_metrics_grid/sr_metrics_grid.log",
    benchmark:
        "logs/benchmark/plot_sr_metrics_grid/sr_metrics_grid.tsv"


# The report's whole grid: every preset at its scales (exp_a..exp_f, SE, progressive, stacked).
rule srgan_all:
    input:
        expand(rules.compute_sr_metrics_grid.output.table, scan=SRGAN["scans"]),
        rules.plot_sr_metrics_grid.output.png,
        rules.plot_sr_metrics_grid.output.pdf,
