# Data stage: built-in scans -> DXchange .h5 -> float32 TIFF slices -> clip bounds -> PNGs.


rule simulate_scan:
    output:
        h5="results/scans/{scan}.h5",
    log:
        "logs/simulate_scan/{scan}.log",
    benchmark:
        "logs/benchmark/simulate_scan/{scan}.tsv"
    conda:
        "../../envs/recon.yaml"
    threads: 2
    resources:
        runtime=size_of("simulate_scan", "runtime"),
        mem_mb=size_of("simulate_scan", "mem_mb"),
    params:
        sim=plan_of(plan.simulate_params),
    script:
        "../../scripts/simulate_scan.py"


rule reconstruct:
    input:
        h5=plan_of(plan.scan_file),
    output:
        slices=directory("results/recon/{scan}"),
    log:
        "logs/reconstruct/{scan}.log",
    benchmark:
        "logs/benchmark/reconstruct/{scan}.tsv"
    conda:
        get_recon_env()
    threads: config["recon"]["threads"]
    resources:
        runtime=size_of("reconstruct", "runtime"),
        mem_mb=size_of("reconstruct", "mem_mb"),
        gpu=gpu_of("reconstruct"),
    params:
        recon=plan_of(plan.recon_params),
    script:
        "../../scripts/reconstruct.py"


rule clip_bounds:
    input:
        slices=rules.reconstruct.output.slices,
    output:
        bounds="results/preprocess/{scan}/bounds.json",
    log:
        "logs/clip_bounds/{scan}.log",
    benchmark:
        "logs/benchmark/clip_bounds/{scan}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: SIZING_THREADS["clip_bounds"]
    resources:
        runtime=size_of("clip_bounds", "runtime"),
        mem_mb=size_of("clip_bounds", "mem_mb"),
    params:
        skip_slices=config["preprocess"]["skip_slices"],
        percentiles=config["preprocess"]["percentiles"],
    script:
        "../../scripts/clip_bounds.py"


rule split_manifest:
    input:
        slices=rules.reconstruct.output.slices,
    output:
        split="results/png/{scan}/split.json",
    log:
        "logs/split_manifest/{scan}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        runtime=size_of("split_manifest", "runtime"),
        mem_mb=size_of("split_manifest", "mem_mb"),
    params:
        skip_slices=config["preprocess"]["skip_slices"],
        fractions=config["preprocess"]["split"],
        seed=config["preprocess"]["seed"],
    script:
        "../../scripts/split_manifest.py"


rule export_png:
    input:
        slices=rules.reconstruct.output.slices,
        bounds=rules.clip_bounds.output.bounds,
    output:
        png=directory("results/png/{scan}/{size}px"),
    log:
        "logs/export_png/{scan}_{size}px.log",
    benchmark:
        "logs/benchmark/export_png/{scan}_{size}px.tsv"
    conda:
        "../../envs/data.yaml"
    threads: SIZING_THREADS["export_png"]
    resources:
        runtime=size_of("export_png", "runtime"),
        mem_mb=size_of("export_png", "mem_mb"),
    params:
        skip_slices=config["preprocess"]["skip_slices"],
    script:
        "../../scripts/export_png.py"
