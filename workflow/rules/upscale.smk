# Upscaling (thesis 4.4, 5.3, 6.2): SRCNN trained on real low/high pairs; the low-resolution
# WGAN-GP samples upscaled by each method; SRCNN figures. Helpers in common.smk.


rule train_srcnn:
    input:
        low=with_size(rules.export_png.output.png, LOW_SIZE),
        high=with_size(rules.export_png.output.png, HIGH_SIZE),
        split=rules.split_manifest.output.split,
    output:
        best="results/models/srcnn/{scan}/best.pt",
        log="results/models/srcnn/{scan}/log.csv",
    log:
        "logs/train_srcnn/{scan}.log",
    benchmark:
        "logs/benchmark/train_srcnn/{scan}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: SIZING_THREADS["train_srcnn"]
    resources:
        runtime=size_of("train_srcnn", "runtime"),
        mem_mb=size_of("train_srcnn", "mem_mb"),
        gpu=gpu_of("train_srcnn"),
    params:
        srcnn=config["srcnn"],
    script:
        "../../scripts/train_srcnn.py"


rule upscale:
    input:
        samples=with_size(rules.sample_wgan_gp.output.samples, LOW_SIZE),
        model=get_upscale_model,
    output:
        images=directory("results/upscaled/{scan}/{method}"),
    log:
        "logs/upscale/{scan}_{method}.log",
    benchmark:
        "logs/benchmark/upscale/{scan}_{method}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        runtime=size_of("upscale", "runtime"),
        mem_mb=size_of("upscale", "mem_mb"),
        gpu=gpu_of("upscale"),
    params:
        size=HIGH_SIZE,
        device=config["upscale"]["device"],
        batch_size=config["upscale"]["batch_size"],
    script:
        "../../scripts/upscale.py"


rule plot_srcnn_training:
    input:
        logs=expand(rules.train_srcnn.output.log, scan=upscale_scans()),
    output:
        png=report(
            "results/plots/srcnn_training.png",
            caption="../report/srcnn_training.rst",
            category="Upscaling",
            labels={"figure": "SRCNN training"},
        ),
        pdf="results/plots/srcnn_training.pdf",
    log:
        "logs/plot_srcnn_training/plot.log",
    benchmark:
        "logs/benchmark/plot_srcnn_training/plot.tsv"
    conda:
        "../../envs/eval.yaml"
    resources:
        runtime=size_of("plot_srcnn_training", "runtime"),
        mem_mb=size_of("plot_srcnn_training", "mem_mb"),
    params:
        scans=upscale_scans(),
    script:
        "../../scripts/plot_srcnn_training.py"


rule plot_srcnn_comparison:
    input:
        low=expand(rules.export_png.output.png, scan=upscale_scans(), size=LOW_SIZE),
        high=expand(rules.export_png.output.png, scan=upscale_scans(), size=HIGH_SIZE),
        split=expand(rules.split_manifest.output.split, scan=upscale_scans()),
        models=expand(rules.train_srcnn.output.best, scan=upscale_scans()),
        bicubic=expand(
            rules.upscale.output.images, scan=upscale_scans(), method="bicubic"
        ),
        srcnn=expand(rules.upscale.output.images, scan=upscale_scans(), method="srcnn"),
    output:
        png=report(
            "results/plots/srcnn_comparison.png",
            caption="../report/srcnn_comparison.rst",
            category="Upscaling",
            labels={"figure": "SRCNN vs bicubic"},
        ),
        pdf="results/plots/srcnn_comparison.pdf",
    log:
        "logs/plot_srcnn_comparison/plot.log",
    benchmark:
        "logs/benchmark/plot_srcnn_comparison/plot.tsv"
    conda:
        "../../envs/eval.yaml"
    resources:
        runtime=size_of("plot_srcnn_comparison", "runtime"),
        mem_mb=size_of("plot_srcnn_comparison", "mem_mb"),
    params:
        scans=upscale_scans(),
        device=config["upscale"]["device"],
        crop=config["upscale"]["comparison_crop"],
    script:
        "../../scripts/plot_srcnn_comparison.py"
