# Data overview figure, the results summary and the HTML report's captions.


rule plot_scan_overview:
    input:
        png=expand("results/png/{{scan}}/{size}px", size=SIZES),
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
        "../../envs/eval.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        sizes=SIZES,
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
        "../../envs/eval.yaml"
    resources:
        runtime=5,
        mem_mb=500,
    params:
        titles=get_summary_titles(),
    script:
        "../../scripts/summarize.py"
