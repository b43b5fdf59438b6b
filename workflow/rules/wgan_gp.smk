# Generators: one WGAN-GP per scan and PNG size, each trained for the same wall-clock budget
# (thesis 5.2), then sampled.
#
# Resume: the training writes results/models/wgan_gp/{scan}_{size}px/latest.pt every
# wgan_gp.train.checkpoint_minutes of wall time (outside the budget; the live progress grids
# go to progress_live/) and when SIGTERM/SIGUSR1 arrives (SLURM time limit or preemption), then
# exits with status 75. Neither is a declared output, so they
# survive Snakemake deleting the declared outputs before it reruns a job; rerunning the same
# target resumes from latest.pt with the epoch count, budget spent and RNG state restored.
# A changed result-affecting parameter (params) starts the training over instead.


rule train_wgan_gp:
    input:
        png=rules.export_png.output.png,
        split=rules.split_manifest.output.split,
    output:
        model="results/models/wgan_gp/{scan}_{size}px/final.pt",
        log_csv="results/models/wgan_gp/{scan}_{size}px/log.csv",
        progress=directory("results/models/wgan_gp/{scan}_{size}px/progress"),
    log:
        "logs/train_wgan_gp/{scan}_{size}px.log",
    benchmark:
        "logs/benchmark/train_wgan_gp/{scan}_{size}px.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: SIZING_THREADS["train_wgan_gp"]
    resources:
        runtime=size_of("train_wgan_gp", "runtime"),
        mem_mb=size_of("train_wgan_gp", "mem_mb"),
        gpu=gpu_of("train_wgan_gp"),
    params:
        train=get_wgan_gp_params,
    script:
        "../../scripts/train_wgan_gp.py"


rule sample_wgan_gp:
    input:
        model=rules.train_wgan_gp.output.model,
    output:
        samples=directory("results/samples/wgan_gp/{scan}_{size}px"),
        contact_sheet="results/samples/wgan_gp/{scan}_{size}px_contact_sheet.png",
    log:
        "logs/sample_wgan_gp/{scan}_{size}px.log",
    benchmark:
        "logs/benchmark/sample_wgan_gp/{scan}_{size}px.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        runtime=size_of("sample_wgan_gp", "runtime"),
        mem_mb=size_of("sample_wgan_gp", "mem_mb"),
        gpu=gpu_of("sample_wgan_gp"),
    params:
        n=config["wgan_gp"]["sample"]["n"],
        seed=config["wgan_gp"]["sample"]["seed"],
        batch=config["wgan_gp"]["sample"]["batch"],
        device=config["wgan_gp"]["train"]["device"],
    script:
        "../../scripts/sample_wgan_gp.py"
