# Evaluation: distribution distances (FID through pytorch-fid, and the
# weight-free FRD v1 of frd-score offline) with N, bootstrap CI, same-N real baseline, KID and FID-infinity;
# the thesis' figure-11 bar plot; compute accounting. Helpers in common.smk. Bone and
# morphology rules live in bone.smk.


rule compute_distance:
    input:
        unpack(plan_of(plan.distance_inputs)),
    output:
        table="results/metrics/distance/{scan}.csv",
        provenance="results/metrics/distance/{scan}.json",
        stats=directory("results/metrics/distance/{scan}/stats"),
    log:
        "logs/compute_distance/{scan}.log",
    benchmark:
        "logs/benchmark/compute_distance/{scan}.tsv"
    conda:
        "../../envs/eval.yaml"
    threads: SIZING_THREADS["compute_distance"]
    resources:
        runtime=size_of("compute_distance", "runtime"),
        mem_mb=size_of("compute_distance", "mem_mb"),
        gpu=gpu_of("compute_distance"),
    params:
        sets=plan_of(plan.distance_set_names),
        references=["train", "test"],
        fid_weights=EVALUATE["fid_weights"],
        offline_fallback=EVALUATE["offline_fallback"],
        device=EVALUATE["device"],
        batch_size=EVALUATE["batch_size"],
        feature_cache=EVALUATE["feature_cache"],
        distance=EVALUATE["distance"],
        provenance=plan_of(plan.distance_provenance),
    script:
        "../../scripts/compute_distance.py"


rule plot_distance:
    input:
        table=rules.compute_distance.output.table,
        provenance=rules.compute_distance.output.provenance,
    output:
        png=report(
            "results/plots/distance_{scan}.png",
            caption="../report/distance.rst",
            category="Distances",
            labels={"scan": "{scan}", "figure": "distance bars"},
        ),
        pdf="results/plots/distance_{scan}.pdf",
        provenance="results/plots/distance_{scan}.json",
    log:
        "logs/plot_distance/{scan}.log",
    benchmark:
        "logs/benchmark/plot_distance/{scan}.tsv"
    conda:
        "../../envs/plot.yaml"
    resources:
        runtime=size_of("plot_distance", "runtime"),
        mem_mb=size_of("plot_distance", "mem_mb"),
    params:
        ci_level=EVALUATE["distance"]["ci_level"],
    script:
        "../../scripts/plot_distance.py"


rule plot_distance_validation:
    input:
        unpack(plan_of(plan.distance_validation_inputs)),
    output:
        table="results/metrics/distance/{scan}_validation.csv",
        png=report(
            "results/plots/distance_validation_{scan}.png",
            caption="../report/distance_validation.rst",
            category="Distances",
            labels={"scan": "{scan}", "figure": "distance validation"},
        ),
        pdf="results/plots/distance_validation_{scan}.pdf",
    log:
        "logs/plot_distance_validation/{scan}.log",
    benchmark:
        "logs/benchmark/plot_distance_validation/{scan}.tsv"
    conda:
        "../../envs/eval.yaml"
    resources:
        runtime=size_of("plot_distance_validation", "runtime"),
        mem_mb=size_of("plot_distance_validation", "mem_mb"),
    params:
        seed=EVALUATE["distance"]["seed"],
        min_std=EVALUATE["distance"]["frd_min_std"],
        max_images=EVALUATE["distance"]["validation_images"],
        frd_images=EVALUATE["distance"]["frd_validation_images"],
    script:
        "../../scripts/plot_distance_validation.py"


rule compute_table:
    input:
        unpack(get_compute_table_input),
    output:
        table="results/metrics/compute.csv",
        provenance="results/metrics/compute.json",
    log:
        "logs/compute_table/compute.log",
    benchmark:
        "logs/benchmark/compute_table/compute.tsv"
    conda:
        "../../envs/eval.yaml"
    resources:
        runtime=size_of("compute_table", "runtime"),
        mem_mb=size_of("compute_table", "mem_mb"),
    params:
        models=get_compute_table_models(),
        pipelines=plan.pipelines(config),
        reference="train",
    script:
        "../../scripts/compute_table.py"
