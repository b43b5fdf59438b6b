# Upscaling (thesis 4.4, 5.3, 6.2): SRCNN trained on real low/high pairs; the low-resolution
# WGAN-GP samples upscaled by each method; SRCNN figures. Helpers in common.smk.


rule train_srcnn:
    input:
        low=f"results/png/{{scan}}/{LOW_SIZE}px",
        high=f"results/png/{{scan}}/{HIGH_SIZE}px",
        split="results/png/{scan}/split.json",
    output:
        best="results/models/srcnn/{scan}/best.pt",
        log="results/models/srcnn/{scan}/log.csv",
    log:
        "logs/train_srcnn/{scan}.log",
    benchmark:
        "logs/benchmark/train_srcnn/{scan}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        runtime=size_of("train_srcnn", "runtime"),
        mem_mb=size_of("train_srcnn", "mem_mb"),
        gpu=1,
    params:
        srcnn=config["srcnn"],
    script:
        "../../scripts/train_srcnn.py"


rule upscale:
    input:
        samples=f"results/samples/wgan_gp/{{scan}}_{LOW_SIZE}px",
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
        runtime=30,
        mem_mb=4000,
        gpu=1,
    params:
        size=HIGH_SIZE,
        device=config["upscale"]["device"],
        batch_size=config["upscale"]["batch_size"],
    script:
        "../../scripts/upscale.py"


rule plot_srcnn_training:
    input:
        logs=expand("results/models/srcnn/{scan}/log.csv", scan=upscale_scans()),
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
        runtime=10,
        mem_mb=2000,
    params:
        scans=upscale_scans(),
    script:
        "../../scripts/plot_srcnn_training.py"


rule plot_srcnn_comparison:
    input:
        low=expand(f"results/png/{{scan}}/{LOW_SIZE}px", scan=upscale_scans()),
        high=expand(f"results/png/{{scan}}/{HIGH_SIZE}px", scan=upscale_scans()),
        split=expand("results/png/{scan}/split.json", scan=upscale_scans()),
        models=expand("results/models/srcnn/{scan}/best.pt", scan=upscale_scans()),
        bicubic=expand("results/upscaled/{scan}/bicubic", scan=upscale_scans()),
        srcnn=expand("results/upscaled/{scan}/srcnn", scan=upscale_scans()),
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
        runtime=10,
        mem_mb=4000,
    params:
        scans=upscale_scans(),
        device=config["upscale"]["device"],
        crop=config["upscale"]["comparison_crop"],
    script:
        "../../scripts/plot_srcnn_comparison.py"
