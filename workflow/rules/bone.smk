# Bone microstructure of SR volumes and morphology of
# real, generated and upscaled image sets. Helpers in common.smk
# (block "bone and morphology"); include after srgan.smk and upscale.smk.
# compute_bone_metrics' _correlations.csv (tomosynth.metrics.bone_tables.correlation_table),
# one row per kind (sr, lr) x region x metric against HR: kind, region, reference, metric,
# unit, convention, n, r, p, ci_low, ci_high, confidence, r_note (why r is NaN), bias
# (median relative error), mare (median absolute relative error), mae, mean_diff, sd_diff,
# loa_low, loa_high (Bland-Altman 95 % limits of kind - HR).


rule compute_bone_metrics:
    input:
        volume=rules.super_resolve.output.volume,
    output:
        table="results/metrics/bone/{scan}_{preset}_x{scale}.csv",
        correlations="results/metrics/bone/{scan}_{preset}_x{scale}_correlations.csv",
        consistency="results/metrics/bone/{scan}_{preset}_x{scale}_consistency.csv",
        provenance="results/metrics/bone/{scan}_{preset}_x{scale}.json",
    log:
        "logs/compute_bone_metrics/{scan}_{preset}_x{scale}.log",
    benchmark:
        "logs/benchmark/compute_bone_metrics/{scan}_{preset}_x{scale}.tsv"
    conda:
        "../../envs/plot.yaml"
    threads: get_compute_bone_metrics_threads
    resources:
        runtime=bone_size_of("runtime"),
        mem_mb=bone_size_of("mem_mb"),
    params:
        bone=BONE,
        voxel_um=plan_of(plan.scan_voxel_um),
        provenance=plan_of(plan.bone_provenance),
    script:
        "../../scripts/compute_bone_metrics.py"


rule plot_bone:
    input:
        table=rules.compute_bone_metrics.output.table,
        correlations=rules.compute_bone_metrics.output.correlations,
        consistency=rules.compute_bone_metrics.output.consistency,
    output:
        png=report(
            "results/plots/bone_{scan}_{preset}_x{scale}.png",
            caption="../report/bone.rst",
            category="Bone metrics",
            labels={"scan": "{scan}", "figure": "{preset} x{scale}"},
        ),
        pdf="results/plots/bone_{scan}_{preset}_x{scale}.pdf",
        bland_altman_png=report(
            "results/plots/bland_altman_{scan}_{preset}_x{scale}.png",
            caption="../report/bland_altman.rst",
            category="Bone metrics",
            labels={"scan": "{scan}", "figure": "Bland-Altman {preset} x{scale}"},
        ),
        bland_altman_pdf="results/plots/bland_altman_{scan}_{preset}_x{scale}.pdf",
        consistency_png=report(
            "results/plots/consistency_{scan}_{preset}_x{scale}.png",
            caption="../report/consistency.rst",
            category="Bone metrics",
            labels={"scan": "{scan}", "figure": "3D consistency {preset} x{scale}"},
        ),
        consistency_pdf="results/plots/consistency_{scan}_{preset}_x{scale}.pdf",
    log:
        "logs/plot_bone/{scan}_{preset}_x{scale}.log",
    benchmark:
        "logs/benchmark/plot_bone/{scan}_{preset}_x{scale}.tsv"
    conda:
        "../../envs/plot.yaml"
    resources:
        runtime=size_of("plot_bone", "runtime"),
        mem_mb=size_of("plot_bone", "mem_mb"),
    params:
        metrics=BONE["plot_metrics"],
        title=get_bone_title,
    script:
        "../../scripts/plot_bone.py"


rule compute_morphology:
    input:
        unpack(plan_of(plan.morphology_inputs)),
    output:
        table="results/metrics/morphology/{scan}.csv",
        s2="results/metrics/morphology/{scan}_s2.csv",
        sizes="results/metrics/morphology/{scan}_sizes.csv",
        provenance="results/metrics/morphology/{scan}.json",
    log:
        "logs/compute_morphology/{scan}.log",
    benchmark:
        "logs/benchmark/compute_morphology/{scan}.tsv"
    conda:
        "../../envs/plot.yaml"
    threads: 1
    resources:
        runtime=size_of("compute_morphology", "runtime"),
        mem_mb=size_of("compute_morphology", "mem_mb"),
    params:
        morphology=MORPHOLOGY,
        sets=plan_of(plan.morphology_set_kinds),
        provenance=plan_of(plan.morphology_provenance),
    script:
        "../../scripts/compute_morphology.py"


rule plot_morphology:
    input:
        table=rules.compute_morphology.output.table,
        s2=rules.compute_morphology.output.s2,
        sizes=rules.compute_morphology.output.sizes,
    output:
        png=report(
            "results/plots/morphology_{scan}.png",
            caption="../report/morphology.rst",
            category="Morphology",
            labels={"scan": "{scan}", "figure": "morphology"},
        ),
        pdf="results/plots/morphology_{scan}.pdf",
    log:
        "logs/plot_morphology/{scan}.log",
    benchmark:
        "logs/benchmark/plot_morphology/{scan}.tsv"
    conda:
        "../../envs/plot.yaml"
    resources:
        runtime=size_of("plot_morphology", "runtime"),
        mem_mb=size_of("plot_morphology", "mem_mb"),
    params:
        title="{scan}: morphology of real, generated and upscaled images",
    script:
        "../../scripts/plot_morphology.py"
