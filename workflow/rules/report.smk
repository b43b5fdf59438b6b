# Data overview figure, the results summary and the HTML report's captions.


rule plot_scan_overview:
    input:
        png=get_scan_overview_pngs,
        slices=rules.reconstruct.output.slices,
        bounds=rules.clip_bounds.output.bounds,
    output:
        png=report(
            "results/plots/scan_{scan}.png",
            caption="../report/scan_overview.rst",
            category="Data",
            labels={"scan": "{scan}", "figure": "overview"},
        ),
        pdf="results/plots/scan_{scan}.pdf",
    log:
        "logs/plot_scan_overview/{scan}.log",
    conda:
        "../../envs/plot.yaml"
    resources:
        runtime=size_of("plot_scan_overview", "runtime"),
        mem_mb=size_of("plot_scan_overview", "mem_mb"),
    params:
        sizes=plan_of(plan.scan_sizes),
    script:
        "../../scripts/plot_scan_overview.py"


rule summarize:
    input:
        unpack(get_summary_inputs),
    output:
        md="results/summary.md",
    log:
        "logs/summarize/summary.log",
    conda:
        "../../envs/plot.yaml"
    resources:
        runtime=size_of("summarize", "runtime"),
        mem_mb=size_of("summarize", "mem_mb"),
    params:
        titles=get_summary_titles(),
    script:
        "../../scripts/summarize.py"


rule plot_gan_losses:
    input:
        logs=expand(rules.train_wgan_gp.output.log_csv, size=SIZES, allow_missing=True),
    output:
        png=report(
            "results/plots/gan_losses_{scan}.png",
            caption="../report/gan_losses.rst",
            category="Generators",
            labels={"scan": "{scan}", "figure": "losses"},
        ),
        pdf="results/plots/gan_losses_{scan}.pdf",
    log:
        "logs/plot_gan_losses/{scan}.log",
    conda:
        "../../envs/plot.yaml"
    resources:
        runtime=size_of("plot_gan_losses", "runtime"),
        mem_mb=size_of("plot_gan_losses", "mem_mb"),
    params:
        labels=expand("{size} px", size=SIZES),
        seed=config["wgan_gp"]["train"]["seed"],
    script:
        "../../scripts/plot_gan_losses.py"


rule plot_gan_progress:
    input:
        progress=rules.train_wgan_gp.output.progress,
    output:
        png=report(
            "results/plots/gan_progress_{scan}_{size}px.png",
            caption="../report/gan_progress.rst",
            category="Generators",
            labels={"scan": "{scan}", "figure": "progress {size} px"},
        ),
    log:
        "logs/plot_gan_progress/{scan}_{size}px.log",
    conda:
        "../../envs/plot.yaml"
    resources:
        runtime=size_of("plot_gan_progress", "runtime"),
        mem_mb=size_of("plot_gan_progress", "mem_mb"),
    params:
        seed=config["wgan_gp"]["train"]["seed"],
    script:
        "../../scripts/plot_gan_progress.py"


rule plot_samples:
    input:
        plan_of(plan.sample_folders),
    output:
        png=report(
            "results/plots/samples_{scan}.png",
            caption="../report/samples.rst",
            category="Generators",
            labels={"scan": "{scan}", "figure": "real vs generated"},
        ),
        pdf="results/plots/samples_{scan}.pdf",
    log:
        "logs/plot_samples/{scan}.log",
    conda:
        "../../envs/plot.yaml"
    resources:
        runtime=size_of("plot_samples", "runtime"),
        mem_mb=size_of("plot_samples", "mem_mb"),
    params:
        labels=plan_of(plan.sample_labels),
        n=4,
        seed=0,
    script:
        "../../scripts/plot_samples.py"
